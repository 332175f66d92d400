-- The audit log of personal-data access (see jiuzhu.audit.v1.AuditService). Each record's hash
-- is SHA-256 over its predecessor's hash and its own content, so an edited, removed or inserted
-- record breaks the chain from there on.
CREATE TABLE audit_log (
    sequence      BIGINT      PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL,
    actor         TEXT        NOT NULL,
    role          TEXT        NOT NULL,
    office        TEXT        NOT NULL,
    acting_person TEXT        NOT NULL,
    action        TEXT        NOT NULL,
    person_id     TEXT        NOT NULL,
    purpose       TEXT        NOT NULL,
    outcome       TEXT        NOT NULL,
    previous_hash TEXT        NOT NULL,
    hash          TEXT        NOT NULL
);
CREATE INDEX audit_log_person ON audit_log (person_id, sequence DESC) WHERE person_id <> '';
CREATE INDEX audit_log_actor ON audit_log (actor, sequence DESC);

-- Append-only: the database refuses edits and deletions too, not just the API.
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
