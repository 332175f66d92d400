-- Data sharing with departments. `share_outbox` holds each department's minimised copy of an
-- event, written in the same transaction as the sharing consumer's checkpoint and published to
-- `jiuzhu.share.<department>.v1` by the share relay; `sharing_log` records what went to whom
-- under which agreement version, queryable by person and by department.
CREATE TABLE share_outbox (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    department         TEXT        NOT NULL,
    event_id           UUID        NOT NULL,
    event_type         TEXT        NOT NULL,
    partition_key      TEXT        NOT NULL,
    agreement_version  TEXT        NOT NULL,
    envelope           BYTEA       NOT NULL,
    -- W3C trace context of the event's processing, so a department's trace continues it.
    trace_context      JSONB       NOT NULL DEFAULT '{}'::jsonb,
    published_at       TIMESTAMPTZ,
    UNIQUE (department, event_id)
);
CREATE INDEX share_outbox_unpublished ON share_outbox (id) WHERE published_at IS NULL;

-- The agreements in force, each time they change (append-only): who agreed, the file's
-- digest, and the departments added and dropped.
CREATE TABLE sharing_agreements (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version              TEXT        NOT NULL,
    agreed_by            TEXT        NOT NULL,
    sha256               TEXT        NOT NULL UNIQUE,
    departments          TEXT[]      NOT NULL,
    departments_added    TEXT[]      NOT NULL,
    departments_dropped  TEXT[]      NOT NULL,
    previous_version     TEXT        NOT NULL,
    adopted_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sharing_log (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id           UUID        NOT NULL,
    event_type         TEXT        NOT NULL,
    department         TEXT        NOT NULL,
    agreement_version  TEXT        NOT NULL,
    person_id          UUID,
    pseudonym          TEXT        NOT NULL DEFAULT '',
    shared_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sharing_log_once ON sharing_log (event_id, department, coalesce(person_id, '00000000-0000-0000-0000-000000000000'));
CREATE INDEX sharing_log_person ON sharing_log (person_id, id);
CREATE INDEX sharing_log_department ON sharing_log (department, id);
