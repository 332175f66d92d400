-- The double-entry ledger, command side: every movement is a transaction of entries summing to
-- zero (checked by the domain before it is written), and balances are kept in the same
-- transaction; no account but finance may go below zero, so an overdraft cannot commit.
CREATE TABLE ledger_entries (
    position        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  UUID   NOT NULL,
    account         TEXT   NOT NULL,
    fen             BIGINT NOT NULL CHECK (fen <> 0),
    reason          TEXT   NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account, position);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);

CREATE TABLE account_balances (
    account  TEXT   PRIMARY KEY,
    fen      BIGINT NOT NULL,
    CONSTRAINT no_overdraft CHECK (fen >= 0 OR account = 'finance')
);
