-- Matching now runs against an index each clues process holds in memory, built from
-- linkage_persons and kept current by following its changes: every write stamps the row with
-- its transaction id, so a process asks "what changed since the oldest transaction that was
-- still running when I last looked" and misses nothing that commits late. An erased person
-- stays as a blank tombstone row, so that followers learn of the erasure too. Blocking keys, name
-- counts and the person count live in memory only.
ALTER TABLE linkage_persons
    ADD COLUMN erased BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN txid   xid8    NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX linkage_persons_txid ON linkage_persons (txid);
DROP INDEX linkage_persons_norm_name;
ALTER TABLE linkage_persons DROP COLUMN norm_name;
DROP TABLE linkage_blocks;
DROP TABLE linkage_names;
ALTER TABLE linkage_index_stats DROP COLUMN persons;
