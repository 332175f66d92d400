-- Household memberships with the times they began and ended, for answers "as of" a day. An
-- installation with earlier data fills it by rebuilding the persons view once:
-- `jiuzhu-registry rebuild registry.persons`.
CREATE TABLE household_memberships (
    household_id UUID        NOT NULL,
    person_id    UUID        NOT NULL,
    relationship INT         NOT NULL,
    joined_at    TIMESTAMPTZ NOT NULL,
    left_at      TIMESTAMPTZ,
    PRIMARY KEY (household_id, person_id, joined_at)
);
CREATE INDEX household_memberships_person ON household_memberships (person_id);
