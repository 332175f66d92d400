-- A due date counted over a year without its official holiday notice: counted again when the
-- notice is loaded (StageDeadlineRecounted). A closed case reported to rural revitalization
-- owes nothing more (its due date is cleared by CaseReported).
ALTER TABLE relief_cases ADD COLUMN due_provisional BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX relief_cases_provisional ON relief_cases (case_id) WHERE due_provisional;
