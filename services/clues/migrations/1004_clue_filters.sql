-- Clues are listed by jurisdiction (procuratorate, region prefix), score and age, and a
-- referred clue is closed with an outcome. A clue id is a UUIDv7, so rows from before this
-- migration take their detection time from it.
ALTER TABLE clues
    ADD COLUMN region_code     TEXT        NOT NULL DEFAULT '',
    ADD COLUMN detected_at     TIMESTAMPTZ,
    ADD COLUMN outcome         INTEGER     NOT NULL DEFAULT 0,
    ADD COLUMN relief_case_id  TEXT        NOT NULL DEFAULT '';
UPDATE clues SET detected_at = to_timestamp(
    ('x' || lpad(substr(replace(clue_id::text, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint / 1000.0);
ALTER TABLE clues ALTER COLUMN detected_at SET NOT NULL;
CREATE INDEX clues_by_procuratorate ON clues (procuratorate, clue_id DESC);
CREATE INDEX clues_by_region ON clues (region_code text_pattern_ops);
