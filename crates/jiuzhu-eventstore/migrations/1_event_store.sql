-- Platform tables every service database has. Versions 1..99 belong to this crate;
-- jiuzhu-messaging uses 100..199 and services 1000 and above.

-- Every event, in the order it was committed per stream. `position` is a global order of
-- insertion, not of commit: readers that tail it must not assume it has no gaps.
CREATE TABLE events (
    position        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        UUID        NOT NULL UNIQUE,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL CHECK (stream_version > 0),
    event_type      TEXT        NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    correlation_id  TEXT        NOT NULL,
    causation_id    TEXT        NOT NULL,
    partition_key   TEXT        NOT NULL,
    payload         BYTEA       NOT NULL,
    UNIQUE (stream_id, stream_version)
);

CREATE TABLE snapshots (
    stream_id       TEXT PRIMARY KEY,
    stream_version  BIGINT      NOT NULL,
    state           BYTEA       NOT NULL,
    taken_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Events waiting to reach Kafka, written in the same transaction as `events`.
-- The relay selects unpublished rows, never "rows after the last id it saw", so a row whose
-- transaction commits late is still published (the outbox gap bug cannot happen).
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        UUID        NOT NULL UNIQUE REFERENCES events (event_id),
    topic           TEXT        NOT NULL,
    partition_key   TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    envelope        BYTEA       NOT NULL,
    trace_context   JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at    TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Answers to commands already carried out, by the caller's request id: a retry gets the same
-- answer and causes nothing new.
CREATE TABLE commands (
    request_id      TEXT PRIMARY KEY,
    command_type    TEXT        NOT NULL,
    fingerprint     BYTEA       NOT NULL,
    response        BYTEA       NOT NULL,
    executed_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
