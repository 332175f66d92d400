-- What follow-up found after each case's relief (from `jiuzhu.followup.events.v1`): the latest
-- visit's outcome, exported with the decided cases as a training label.
CREATE TABLE case_outcomes (
    case_id               UUID    PRIMARY KEY,
    effect_score          INTEGER NOT NULL,
    scoring_method        TEXT    NOT NULL,
    trend                 TEXT    NOT NULL,
    last_visit            INTEGER NOT NULL,
    months_since_payment  INTEGER NOT NULL,
    visited_on            TEXT    NOT NULL
);
