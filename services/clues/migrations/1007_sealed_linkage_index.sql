-- The linkage index's copy of registry identities stays as the registry sealed it (under each
-- person's data key; the index opens it in memory with keys from the registry's key service),
-- never in the clear. The tables of the earlier on-disk index, unused since matching moved into
-- memory, go. Rows written before are unreadable now: the projection starts again (an
-- installation with earlier data rebuilds it: `jiuzhu-clues rebuild clues.linkage_index`).
DROP TABLE IF EXISTS linkage_blocks;
DROP TABLE IF EXISTS linkage_names;
ALTER TABLE linkage_persons
    DROP COLUMN full_name,
    DROP COLUMN birth_date,
    DROP COLUMN resident_id,
    DROP COLUMN phone,
    DROP COLUMN township,
    DROP COLUMN village,
    DROP COLUMN IF EXISTS norm_name,
    ADD COLUMN identity BYTEA;
TRUNCATE linkage_persons;
UPDATE linkage_index_stats SET applied_events = 0;
