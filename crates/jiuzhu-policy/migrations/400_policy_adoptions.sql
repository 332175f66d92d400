-- Every policy set a service has adopted: which version, from when, who adopted it, and the
-- SHA-256 of its files, so that any decision's policy version can be traced to the exact text.
CREATE TABLE policy_adoptions (
    id              BIGSERIAL   PRIMARY KEY,
    version         TEXT        NOT NULL,
    effective_from  DATE        NOT NULL,
    adopted_by      TEXT        NOT NULL,
    sha256          TEXT        NOT NULL UNIQUE,
    -- File name → where its text came from (a path, or the compiled-in copy).
    files           JSONB       NOT NULL,
    service         TEXT        NOT NULL,
    adopted_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
