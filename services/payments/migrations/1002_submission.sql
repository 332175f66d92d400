-- Registry identities as the payments service received them, still sealed under each person's
-- data key: opened only to check that a payee's name is the person's. Erasure blanks them.
CREATE TABLE person_identities (
    person_id  UUID    PRIMARY KEY,
    sealed     BYTEA,
    version    BIGINT  NOT NULL,
    erased     BOOLEAN NOT NULL DEFAULT FALSE
);

-- Command side of payees: the account each person is paid to, sealed (the event is the record).
CREATE TABLE payees (
    person_id  UUID   PRIMARY KEY,
    sealed     BYTEA  NOT NULL,
    masked     TEXT   NOT NULL,
    version    BIGINT NOT NULL
);

-- The submitter's work: disbursements that need the provider (a first or new attempt, or a
-- resend of an attempt whose outcome is unknown), each when it is due. Claimed with
-- FOR UPDATE SKIP LOCKED, so any number of processes share it.
CREATE TABLE submissions (
    disbursement_id  UUID        PRIMARY KEY,
    person_id        UUID        NOT NULL,
    due_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Due, but the person has no payee yet: registering one makes it due at once.
    waiting_payee    BOOLEAN     NOT NULL DEFAULT FALSE
);
CREATE INDEX submissions_due ON submissions (due_at);
CREATE INDEX submissions_person ON submissions (person_id);

-- Every attempt sent to a provider, by idempotency key: for notices, and for reconciliation
-- against the bank's statement.
CREATE TABLE attempts (
    idempotency_key     TEXT        PRIMARY KEY,
    disbursement_id     UUID        NOT NULL,
    attempt             INTEGER     NOT NULL,
    fen                 BIGINT      NOT NULL,
    provider            TEXT        NOT NULL,
    submitted_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- 'unknown' until an outcome: 'paid', 'failed', 'reversed'.
    outcome             TEXT        NOT NULL DEFAULT 'unknown',
    provider_reference  TEXT        NOT NULL DEFAULT '',
    settled_at          TIMESTAMPTZ
);
CREATE INDEX attempts_paid ON attempts (settled_at) WHERE outcome = 'paid';

-- Imported statements and their reconciliation (the encoded report), so an import is
-- answered once per statement.
CREATE TABLE statements (
    statement_id  UUID        PRIMARY KEY,
    provider      TEXT        NOT NULL,
    imported_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    report        BYTEA       NOT NULL
);
