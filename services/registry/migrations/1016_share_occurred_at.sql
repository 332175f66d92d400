-- When the shared event happened (its envelope's time): the CloudEvents `ce_time` header.
ALTER TABLE share_outbox ADD COLUMN occurred_at TIMESTAMPTZ;
