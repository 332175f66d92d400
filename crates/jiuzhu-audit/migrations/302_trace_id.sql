-- The trace of the call that made each record, so that an operator can go from a record to its
-- trace in Jaeger. Hashed with the record when it is not empty (earlier records stay as they
-- were chained).
ALTER TABLE audit_log ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';
