-- The person's county, in clear on the registry's events: a payee is registered only by an
-- office whose jurisdiction holds it. Rows received before this migration have none (and
-- refuse every office-bound caller) until `jiuzhu-payments rebuild payments.person_identities`.
ALTER TABLE person_identities ADD COLUMN region_code TEXT NOT NULL DEFAULT '';
