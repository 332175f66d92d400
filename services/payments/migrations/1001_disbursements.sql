-- Command side of ordering: one disbursement per approved decision and instalment (redelivered
-- approvals order nothing twice), and the disbursements waiting for budget, oldest first.
CREATE TABLE disbursement_claims (
    case_id          UUID    NOT NULL,
    instalment       INTEGER NOT NULL,
    disbursement_id  UUID    NOT NULL UNIQUE,
    PRIMARY KEY (case_id, instalment)
);

CREATE TABLE waiting_for_funds (
    disbursement_id  UUID   PRIMARY KEY,
    procuratorate    TEXT   NOT NULL,
    fen              BIGINT NOT NULL,
    position         BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX waiting_for_funds_by_procuratorate ON waiting_for_funds (procuratorate, position);
