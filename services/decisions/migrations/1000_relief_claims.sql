-- Command side of "once only": one relief case per person per criminal case, and none where
-- another agency already gave relief for it. A row holds the case opened, or the other agency.
CREATE TABLE relief_claims (
    person_id     UUID NOT NULL,
    case_no       TEXT NOT NULL,
    case_id       UUID,
    other_agency  TEXT,
    reference     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (person_id, case_no),
    CHECK ((case_id IS NULL) <> (other_agency IS NULL))
);
