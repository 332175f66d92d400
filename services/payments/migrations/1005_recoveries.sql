-- Money the bank paid that it should not have: a statement debiting one idempotency key a
-- second time, or a payment answered after another attempt was paid or after the disbursement
-- was cancelled or failed for good. What finance must recover from the payee or the bank, one
-- row per payment; `recovered_at` is set when finance has the money back.
CREATE TABLE recoveries (
    idempotency_key  TEXT        NOT NULL,
    bank_reference   TEXT        NOT NULL,
    disbursement_id  UUID        NOT NULL,
    fen              BIGINT      NOT NULL,
    reason           TEXT        NOT NULL,
    -- The statement line that showed it, when a statement did.
    statement_id     UUID,
    line             BIGINT,
    opened_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    recovered_at     TIMESTAMPTZ,
    PRIMARY KEY (idempotency_key, bank_reference)
);
