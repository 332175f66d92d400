-- The per-person file (一人一档): every event of every service about a person, built from all
-- five services' topics. `detail` is the event decoded to JSON with the published descriptors.
CREATE TABLE person_file (
    person_id       UUID        NOT NULL,
    event_id        UUID        NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    producer        TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL,
    detail          JSONB       NOT NULL,
    PRIMARY KEY (person_id, event_id)
);
CREATE INDEX person_file_timeline ON person_file (person_id, occurred_at, event_id);
