-- What the follow-up service knows of relief cases, from the decisions topic: category, county,
-- office and the approved methods (for schedules and statistics).
CREATE TABLE case_facts (
    case_id        UUID   PRIMARY KEY,
    person_id      UUID   NOT NULL,
    procuratorate  TEXT   NOT NULL DEFAULT '',
    region_code    TEXT   NOT NULL DEFAULT '',
    category       TEXT   NOT NULL DEFAULT '',
    methods        TEXT[] NOT NULL DEFAULT '{}',
    approved       BOOLEAN NOT NULL DEFAULT FALSE
);

-- Command side: one plan per relief case, however often its payments are delivered.
CREATE TABLE plan_claims (
    case_id  UUID PRIMARY KEY,
    plan_id  UUID NOT NULL UNIQUE
);

-- Read model of visits, from the service's own topic: what is due or overdue, by office.
CREATE TABLE visit_board (
    plan_id    UUID    NOT NULL,
    number     INTEGER NOT NULL,
    person_id  UUID    NOT NULL,
    office     TEXT    NOT NULL,
    due_date   DATE    NOT NULL,
    channel    INTEGER NOT NULL,
    -- 1 scheduled, 2 overdue, 3 done, 4 cancelled (as the API's VisitState)
    state      INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (plan_id, number)
);
CREATE INDEX visit_board_due ON visit_board (state, due_date, plan_id, number);
CREATE INDEX visit_board_office ON visit_board (office, state, due_date);

-- Read model of recorded visits (the event itself, for trends) and their outcomes, flat, for
-- statistics. No answers: the evaluation stays sealed inside `recorded`.
CREATE TABLE visit_outcomes (
    plan_id                UUID    NOT NULL,
    number                 INTEGER NOT NULL,
    person_id              UUID    NOT NULL,
    visited_on             DATE    NOT NULL,
    category               TEXT    NOT NULL,
    region_code            TEXT    NOT NULL,
    methods                TEXT[]  NOT NULL,
    months_since_payment   INTEGER NOT NULL,
    effect_score           INTEGER NOT NULL,
    trend                  INTEGER NOT NULL,
    income_change_fen      BIGINT  NOT NULL,
    phq9_change            INTEGER NOT NULL,
    gad7_change            INTEGER NOT NULL,
    k10_change             INTEGER NOT NULL,
    recorded               BYTEA   NOT NULL,
    PRIMARY KEY (plan_id, number)
);
CREATE INDEX visit_outcomes_person ON visit_outcomes (person_id, visited_on);

CREATE TABLE risk_flags (
    plan_id       UUID    NOT NULL,
    visit_number  INTEGER NOT NULL,
    person_id     UUID    NOT NULL,
    reasons       TEXT[]  NOT NULL,
    PRIMARY KEY (plan_id, visit_number)
);
