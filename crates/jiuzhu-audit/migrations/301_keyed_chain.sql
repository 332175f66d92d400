-- From here on records are chained by HMAC-SHA-256 under the audit key, which the database
-- never holds: whoever can write this table can no longer recompute the chain. Earlier records
-- stay SHA-256 (`keyed` false); after the first keyed record every one must be keyed.
ALTER TABLE audit_log ADD COLUMN keyed BOOLEAN NOT NULL DEFAULT FALSE;
