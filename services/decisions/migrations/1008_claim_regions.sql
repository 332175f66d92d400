-- The county of the criminal case another agency's relief was recorded for: it is recorded only
-- by an office whose jurisdiction holds it. Rows recorded before this migration have none.
ALTER TABLE relief_claims ADD COLUMN region_code TEXT NOT NULL DEFAULT '';
