-- Command side: which person each department record became, and a fingerprint of its content,
-- so that re-importing a file changes nothing and a changed record becomes an update.
CREATE TABLE source_records (
    department        TEXT  NOT NULL,
    source_record_id  TEXT  NOT NULL,
    person_id         UUID  NOT NULL,
    fingerprint       BYTEA NOT NULL,
    PRIMARY KEY (department, source_record_id)
);
