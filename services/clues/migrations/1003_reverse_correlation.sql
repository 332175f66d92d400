-- Reverse correlation: parties screened in but not matched are kept findable by blocking key,
-- so that a person entering the registry later is checked against the recent ones.
ALTER TABLE party_identities
    ADD COLUMN reported_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN case_no          TEXT        NOT NULL DEFAULT '',
    ADD COLUMN procuratorate    TEXT        NOT NULL DEFAULT '',
    ADD COLUMN role             INTEGER     NOT NULL DEFAULT 0,
    ADD COLUMN incident_date    TEXT        NOT NULL DEFAULT '',
    ADD COLUMN approximate_age  INTEGER     NOT NULL DEFAULT 0,
    ADD COLUMN clue_id          UUID;
CREATE TABLE party_blocks (
    key       TEXT NOT NULL,
    party_id  UUID NOT NULL,
    PRIMARY KEY (key, party_id)
);
