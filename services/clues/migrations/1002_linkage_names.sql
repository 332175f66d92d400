-- How many indexed persons carry each normalised name, for the term-frequency adjustment of
-- name matches (counting on the fly costs a heap visit per namesake).
CREATE TABLE linkage_names (
    norm_name  TEXT PRIMARY KEY,
    persons    BIGINT NOT NULL
);
