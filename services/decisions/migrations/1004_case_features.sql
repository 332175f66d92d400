-- Command side: the features a recommendation was made from (after the registry filled in the
-- household), so that decided cases become training data (ExportDecidedCases). Kept here, not
-- in events: household income is not for every subscriber.
CREATE TABLE case_features (
    case_id   UUID  PRIMARY KEY,
    features  JSONB NOT NULL
);
