-- The console's own state: the staff directory, the audit of changes to it, and sessions.
-- Nothing here is a case's data: that stays in the five services, read through their APIs.

CREATE TABLE staff (
    staff_no       TEXT PRIMARY KEY,
    display_name   TEXT        NOT NULL,
    -- Six-digit region code of the staff member's office.
    office         TEXT        NOT NULL,
    role           TEXT        NOT NULL,
    -- An approver's approval tier; NULL for other roles.
    tier           TEXT,
    -- Argon2id PHC string.
    password_hash  TEXT        NOT NULL,
    -- Base32 TOTP secret (RFC 6238, SHA-1, 6 digits, 30 s).
    totp_secret    TEXT        NOT NULL,
    -- The last TOTP step accepted, so a code is used once.
    totp_last_step BIGINT      NOT NULL DEFAULT 0,
    administrator  BOOLEAN     NOT NULL DEFAULT FALSE,
    active         BOOLEAN     NOT NULL DEFAULT TRUE,
    failed_signins INTEGER     NOT NULL DEFAULT 0,
    locked_until   TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- Every change to the directory, who made it and what it was (never a password or secret).
CREATE TABLE staff_audit (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT        NOT NULL,
    staff_no   TEXT        NOT NULL,
    action     TEXT        NOT NULL,
    detail     JSONB       NOT NULL
);

-- A signed-in session. The cookie holds a random token; only its SHA-256 is kept here.
CREATE TABLE sessions (
    token_sha256 BYTEA PRIMARY KEY,
    staff_no     TEXT        NOT NULL REFERENCES staff (staff_no) ON DELETE CASCADE,
    -- The form token every POST of the session must carry.
    csrf_token   TEXT        NOT NULL,
    language     TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_by_staff ON sessions (staff_no);
