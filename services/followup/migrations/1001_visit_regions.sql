-- The plan's county on the visit board: an office lists only the visits of its jurisdiction.
-- Rows projected before this migration have none (only nationwide roles see them) until
-- `jiuzhu-followup rebuild followup.visit_board`.
ALTER TABLE visit_board ADD COLUMN region_code TEXT NOT NULL DEFAULT '';
CREATE INDEX visit_board_person ON visit_board (person_id);
