-- The registry's own read model of persons, built from jiuzhu.registry.events.v1.
CREATE TABLE persons (
    person_id          UUID PRIMARY KEY,
    full_name          TEXT   NOT NULL,
    gender             INTEGER NOT NULL,
    birth_date         TEXT   NOT NULL,
    resident_id        TEXT   NOT NULL,
    region_code        TEXT   NOT NULL,
    source_department  TEXT   NOT NULL,
    version            BIGINT NOT NULL
);
