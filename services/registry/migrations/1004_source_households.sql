-- Command side: which household a department's household reference became.
CREATE TABLE source_households (
    department     TEXT NOT NULL,
    household_ref  TEXT NOT NULL,
    household_id   UUID NOT NULL,
    PRIMARY KEY (department, household_ref)
);
