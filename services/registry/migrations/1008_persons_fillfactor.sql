-- Room on each page for a row's next version: the household a person joins (an unindexed
-- column) is then a HOT update that rewrites no index entry. Registrations and household joins
-- arrive on different partitions, so most persons are updated once right after insertion.
ALTER TABLE persons SET (fillfactor = 80);
