-- Read model of the registry's topic: what recommendations learn about a person's household
-- (statuses, members, income per head). No identity: person and household ids only.
CREATE TABLE person_statuses (
    status_id  TEXT    PRIMARY KEY,
    person_id  UUID    NOT NULL,
    kind       INTEGER NOT NULL
);
CREATE INDEX person_statuses_person ON person_statuses (person_id);

CREATE TABLE household_members (
    person_id     UUID PRIMARY KEY,
    household_id  TEXT NOT NULL
);
CREATE INDEX household_members_household ON household_members (household_id);

CREATE TABLE household_income (
    household_id         TEXT    PRIMARY KEY,
    year                 INTEGER NOT NULL,
    income_per_head_fen  BIGINT  NOT NULL
);
