-- Command side: facts that span records, checked and claimed inside the command's transaction.
-- A resident id belongs to at most one live person record.
CREATE TABLE resident_id_claims (
    resident_id  TEXT PRIMARY KEY,
    person_id    UUID NOT NULL
);
-- A person belongs to at most one household.
CREATE TABLE household_claims (
    person_id     UUID PRIMARY KEY,
    household_id  UUID NOT NULL
);

-- Read side, built from jiuzhu.registry.events.v1.
ALTER TABLE persons
    ADD COLUMN township      TEXT    NOT NULL DEFAULT '',
    ADD COLUMN village       TEXT    NOT NULL DEFAULT '',
    ADD COLUMN address_text  TEXT    NOT NULL DEFAULT '',
    ADD COLUMN phone         TEXT    NOT NULL DEFAULT '',
    ADD COLUMN flags         INTEGER[] NOT NULL DEFAULT '{}',
    ADD COLUMN merged_into   UUID,
    ADD COLUMN household_id  UUID;
CREATE INDEX persons_resident_id ON persons (resident_id) WHERE resident_id <> '';
CREATE INDEX persons_name_birth ON persons (full_name, birth_date, person_id);
CREATE INDEX persons_name_region ON persons (full_name, region_code, person_id);
CREATE INDEX persons_merged_into ON persons (merged_into) WHERE merged_into IS NOT NULL;

CREATE TABLE person_statuses (
    status_id          UUID PRIMARY KEY,
    person_id          UUID    NOT NULL,
    kind               INTEGER NOT NULL,
    source_department  TEXT    NOT NULL,
    reference          TEXT    NOT NULL,
    effective_from     TEXT    NOT NULL,
    effective_to       TEXT    NOT NULL,
    detail             TEXT    NOT NULL,
    ended              BOOLEAN NOT NULL DEFAULT FALSE,
    end_reason         TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX person_statuses_person ON person_statuses (person_id);

CREATE TABLE household_members (
    household_id  UUID    NOT NULL,
    person_id     UUID    NOT NULL,
    relationship  INTEGER NOT NULL,
    PRIMARY KEY (household_id, person_id)
);

CREATE TABLE household_incomes (
    household_id       UUID    NOT NULL,
    year               INTEGER NOT NULL,
    income_per_head    BIGINT  NOT NULL,
    source_department  TEXT    NOT NULL,
    PRIMARY KEY (household_id, year)
);
