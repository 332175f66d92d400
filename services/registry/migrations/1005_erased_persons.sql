-- Erased persons keep their row (status history, household membership and counts stay valid)
-- with every personal field emptied.
ALTER TABLE persons ADD COLUMN erased BOOLEAN NOT NULL DEFAULT FALSE;
