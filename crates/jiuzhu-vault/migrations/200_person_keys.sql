-- Versions 200..299 belong to jiuzhu-vault. One data key per person, wrapped (AES-256-GCM) by
-- the master key named by `master_key_id`. Erasure sets `wrapped_key` to NULL and keeps the row,
-- so that "erased" and "never known" stay distinguishable.
CREATE TABLE person_keys (
    person_id      UUID PRIMARY KEY,
    wrapped_key    BYTEA,
    master_key_id  TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    erased_at      TIMESTAMPTZ,
    CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
);
