-- The trace the order of a disbursement came in (W3C `traceparent`/`tracestate`): sending it
-- to the provider, the provider's notice and the events they cause continue that trace.
ALTER TABLE submissions ADD COLUMN trace_context JSONB NOT NULL DEFAULT '{}';
