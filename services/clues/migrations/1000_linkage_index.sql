-- The linkage index: registry persons as clue matching needs them, built from
-- jiuzhu.registry.events.v1.
CREATE TABLE linkage_persons (
    person_id    UUID PRIMARY KEY,
    full_name    TEXT   NOT NULL,
    birth_date   TEXT   NOT NULL,
    resident_id  TEXT   NOT NULL,
    region_code  TEXT   NOT NULL,
    version      BIGINT NOT NULL
);
CREATE INDEX linkage_persons_resident_id ON linkage_persons (resident_id) WHERE resident_id <> '';

-- One row: how many registry events the index has applied.
CREATE TABLE linkage_index_stats (
    singleton       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    applied_events  BIGINT NOT NULL
);
INSERT INTO linkage_index_stats (applied_events) VALUES (0);
