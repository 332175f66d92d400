-- A case's parties are evidence for each other: a victim's relatives are mostly their
-- household. The index learns each person's household from the registry's household events
-- (an installation with earlier data rebuilds it: `jiuzhu-clues rebuild clues.linkage_index`),
-- and each party keeps the person its automatic clue linked it to, for the parties of the same
-- case reported after it.
ALTER TABLE linkage_persons ADD COLUMN household_id UUID;
ALTER TABLE party_identities ADD COLUMN linked_person UUID;
CREATE INDEX party_identities_case_no ON party_identities (case_no) WHERE linked_person IS NOT NULL;
CREATE INDEX clues_case_no ON clues (case_no);
