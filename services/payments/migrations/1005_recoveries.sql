-- Money the bank paid twice for one payment (a statement debiting one idempotency key a second
-- time): what finance must recover from the payee or the bank. Opened by reconciliation, one
-- row per statement line; `recovered_at` is set when finance has the money back.
CREATE TABLE recoveries (
    idempotency_key  TEXT        NOT NULL,
    bank_reference   TEXT        NOT NULL,
    statement_id     UUID        NOT NULL,
    line             BIGINT      NOT NULL,
    disbursement_id  UUID        NOT NULL,
    fen              BIGINT      NOT NULL,
    opened_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    recovered_at     TIMESTAMPTZ,
    PRIMARY KEY (idempotency_key, bank_reference)
);
