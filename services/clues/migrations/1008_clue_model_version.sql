-- The linkage model that scored each clue (LinkageModelAdopted names its values); empty for
-- clues detected before models had versions.
ALTER TABLE clues ADD COLUMN model_version TEXT NOT NULL DEFAULT '';
