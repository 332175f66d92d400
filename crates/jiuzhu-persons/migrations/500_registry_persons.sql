-- The registry's persons as this service follows them (jiuzhu-persons): existence, erasure and
-- merges, never identities. A merge may arrive before the survivor's registration (it travels
-- on the absorbed record's partition), so a row can be known before it is registered.
CREATE TABLE registry_persons (
    person_id UUID PRIMARY KEY,
    registered BOOLEAN NOT NULL DEFAULT FALSE,
    erased BOOLEAN NOT NULL DEFAULT FALSE,
    merged_into UUID
);
CREATE INDEX registry_persons_merged_into ON registry_persons (merged_into)
    WHERE merged_into IS NOT NULL;
