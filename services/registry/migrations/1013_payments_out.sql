-- Payments out at the bank per person (from the payments topic): a disbursement's person, and
-- its attempt sent but not yet answered. A person cannot be erased while one is out (the bank
-- may pay it, and its answer must still be matched to the person's disbursement).
CREATE TABLE payments_out (
    disbursement_id  UUID    PRIMARY KEY,
    person_id        UUID    NOT NULL,
    -- The idempotency key of the attempt out; NULL when none is.
    attempt_key      TEXT
);
CREATE INDEX payments_out_by_person ON payments_out (person_id) WHERE attempt_key IS NOT NULL;
