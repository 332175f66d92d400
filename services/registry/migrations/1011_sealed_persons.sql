-- Personal data leaves the persons view and the resident-id claims in the clear: the view keeps
-- the identity as sealed in the event (under the person's data key, so erasure makes it
-- unreadable here too), and searchable fields as keyed blind indexes (HMAC-SHA-256 under a
-- key derived from the master key). An installation with earlier data rebuilds the persons
-- projection after this migration (`jiuzhu-registry rebuild registry.persons --from store`),
-- and re-claims resident ids by replaying its registrations; a development database is simply
-- recreated.
DROP INDEX IF EXISTS persons_resident_id;
DROP INDEX IF EXISTS persons_name_birth;
DROP INDEX IF EXISTS persons_name_region;
ALTER TABLE persons
    DROP COLUMN full_name,
    DROP COLUMN birth_date,
    DROP COLUMN resident_id,
    DROP COLUMN township,
    DROP COLUMN village,
    DROP COLUMN address_text,
    DROP COLUMN phone,
    ADD COLUMN identity           BYTEA,
    ADD COLUMN resident_id_index  TEXT NOT NULL DEFAULT '',
    ADD COLUMN phone_index        TEXT NOT NULL DEFAULT '',
    ADD COLUMN name_index         TEXT NOT NULL DEFAULT '',
    ADD COLUMN name_birth_index   TEXT NOT NULL DEFAULT '';
CREATE INDEX persons_resident_id_index ON persons (resident_id_index, person_id) WHERE resident_id_index <> '';
CREATE INDEX persons_phone_index ON persons (phone_index, person_id) WHERE phone_index <> '';
CREATE INDEX persons_name_birth_index ON persons (name_birth_index, person_id) WHERE name_birth_index <> '';
CREATE INDEX persons_name_region_index ON persons (name_index, region_code, person_id) WHERE name_index <> '';

-- Claims are made by the resident id's blind index, never by the number itself.
TRUNCATE resident_id_claims;
ALTER TABLE resident_id_claims RENAME COLUMN resident_id TO resident_id_index;
