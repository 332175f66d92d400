-- Emergency relief leaves materials owed by a date; the monitor raises the breach once.
ALTER TABLE relief_cases
    ADD COLUMN obligation_due       DATE,
    ADD COLUMN obligation_breached  BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX relief_cases_obligation_due ON relief_cases (obligation_due)
    WHERE obligation_due IS NOT NULL AND NOT obligation_breached;
