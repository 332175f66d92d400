-- A registry record merged into another is not matched; its survivor is. An installation with
-- earlier data rebuilds the index to learn of merges made before: `jiuzhu-clues rebuild
-- clues.linkage_index`.
ALTER TABLE linkage_persons ADD COLUMN merged_into UUID;
