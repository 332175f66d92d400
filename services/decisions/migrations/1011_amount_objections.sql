-- An objection to an approved amount runs beside the case's stage: its review is due by a day,
-- and the monitor raises `ObjectionReviewOverdue` once when it is not done by then.
ALTER TABLE relief_cases
    ADD COLUMN objection_filed_on        DATE,
    ADD COLUMN objection_due             DATE,
    ADD COLUMN objection_overdue_raised  BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX relief_cases_objection_due ON relief_cases (objection_due)
    WHERE objection_due IS NOT NULL;
