-- What operators did with a dead letter (`jiuzhu dlq replay | discard`), and who: a dead letter
-- is resolved once, and the record of it stays.
ALTER TABLE dead_letters
    ADD COLUMN resolution   TEXT CHECK (resolution IN ('replayed', 'discarded')),
    ADD COLUMN resolved_by  TEXT,
    ADD COLUMN resolved_at  TIMESTAMPTZ,
    ADD COLUMN note         TEXT NOT NULL DEFAULT '';
