-- Victims' online applications: the application number and check code an applicant uses to
-- see the case later (only the code's SHA-256 is kept), the one-time codes sent to phones
-- (only hashes), and the SMS simulator's outbox.

CREATE TABLE applications (
    application_no    TEXT PRIMARY KEY,
    case_id           TEXT        NOT NULL,
    region_code       TEXT        NOT NULL,
    check_code_sha256 BYTEA       NOT NULL,
    failed_checks     INTEGER     NOT NULL DEFAULT 0,
    -- The form's request id: the same form sent twice is one application.
    request_id        TEXT        NOT NULL UNIQUE,
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE phone_codes (
    phone_sha256 BYTEA PRIMARY KEY,
    code_sha256  BYTEA       NOT NULL,
    sent_at      TIMESTAMPTZ NOT NULL,
    attempts     INTEGER     NOT NULL DEFAULT 0
);

-- What the SMS simulator "sent": the masked number, the number's hash (to find a message in
-- tests and demos) and the text (a code, never personal data).
CREATE TABLE sms_simulated (
    id           BIGSERIAL PRIMARY KEY,
    sent_at      TIMESTAMPTZ NOT NULL,
    phone_masked TEXT        NOT NULL,
    phone_sha256 BYTEA       NOT NULL,
    text         TEXT        NOT NULL
);
