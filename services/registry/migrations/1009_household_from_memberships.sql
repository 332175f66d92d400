-- A person's household is read from household_members (indexed by person) instead of being
-- copied onto the person row: the copy cost an update per join, and joins arrive on another
-- partition than the registration.
ALTER TABLE persons DROP COLUMN household_id;
