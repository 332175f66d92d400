-- Other departments' records of a person (SourceRecordLinked): the fields each gives otherwise
-- than the registry, for review. The registering department's record is persons' own source.
CREATE TABLE person_sources (
    person_id          UUID   NOT NULL,
    department         TEXT   NOT NULL,
    source_record_id   TEXT   NOT NULL,
    conflicting_fields TEXT[] NOT NULL,
    PRIMARY KEY (person_id, department, source_record_id)
);
