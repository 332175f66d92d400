-- Consumer-side platform tables (versions 100..199 belong to jiuzhu-messaging).

-- Event ids a consumer has applied, written in the same transaction as the projection change:
-- a redelivered event finds its id here and changes nothing.
CREATE TABLE inbox (
    consumer     TEXT        NOT NULL,
    event_id     UUID        NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- How far each consumer has applied each partition (next offset to read), for progress and lag.
CREATE TABLE checkpoints (
    consumer     TEXT        NOT NULL,
    topic        TEXT        NOT NULL,
    partition    INTEGER     NOT NULL,
    next_offset  BIGINT      NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);

-- Messages a consumer gave up on and sent to `<topic>.dlq`, for operators.
CREATE TABLE dead_letters (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer     TEXT        NOT NULL,
    topic        TEXT        NOT NULL,
    partition    INTEGER     NOT NULL,
    "offset"     BIGINT      NOT NULL,
    event_id     UUID,
    reason       TEXT        NOT NULL,
    attempts     INTEGER     NOT NULL,
    dead_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (consumer, topic, partition, "offset")
);
