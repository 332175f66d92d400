-- Need to know: the clues and relief cases a person is linked to, by the region of the office
-- holding them (from the clues and decisions topics). An office reads a person of another
-- county when one of its clues or cases names them.
CREATE TABLE person_links (
    person_id   UUID NOT NULL,
    kind        TEXT NOT NULL,
    reference   TEXT NOT NULL,
    region_code TEXT NOT NULL,
    PRIMARY KEY (person_id, kind, reference)
);
