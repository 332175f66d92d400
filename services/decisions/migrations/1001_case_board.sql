-- Read model of the service's own topic: each case's current stage and its deadline (for
-- monitoring and the deadline lists), and every stage a case has left (for durations).
CREATE TABLE relief_cases (
    case_id             UUID    PRIMARY KEY,
    person_id           UUID    NOT NULL,
    procuratorate       TEXT    NOT NULL,
    region_code         TEXT    NOT NULL,
    stage               INTEGER NOT NULL DEFAULT 0,
    entered_on          DATE,
    due_date            DATE,
    approaching_raised  BOOLEAN NOT NULL DEFAULT FALSE,
    breached_raised     BOOLEAN NOT NULL DEFAULT FALSE,
    version             BIGINT  NOT NULL
);
CREATE INDEX relief_cases_due ON relief_cases (due_date, case_id) WHERE due_date IS NOT NULL;
CREATE INDEX relief_cases_by_procuratorate ON relief_cases (procuratorate, due_date, case_id);

CREATE TABLE stage_history (
    case_id     UUID    NOT NULL,
    stage       INTEGER NOT NULL,
    entered_on  DATE    NOT NULL,
    left_on     DATE    NOT NULL,
    PRIMARY KEY (case_id, stage, entered_on)
);
