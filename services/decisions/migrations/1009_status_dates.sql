-- Statuses keep the dates they are in effect, so that a decision asks for the status on the
-- date that matters, not as it is when the question is asked; an ended status keeps its end
-- date instead of disappearing. Rows recorded before carry no dates and count as always in
-- effect until the projection is rebuilt (`jiuzhu-decisions rebuild decisions.person_facts`).
ALTER TABLE person_statuses
    ADD COLUMN effective_from TEXT NOT NULL DEFAULT '',
    ADD COLUMN effective_to TEXT NOT NULL DEFAULT '';
