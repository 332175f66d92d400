-- A case party's identity (name, ID number, gender, birth date, phone, address) is no longer
-- kept in the clear: it is sealed under the party's own data key (this service's key store), so
-- erasing the person a party was matched to makes it unreadable. The blocking keys of unmatched
-- parties are keyed blind indexes. Parties reported before this migration lose their identity
-- (they can no longer be correlated in reverse; their clues stay).
ALTER TABLE party_identities
    DROP COLUMN full_name,
    DROP COLUMN id_number,
    DROP COLUMN gender,
    DROP COLUMN birth_date,
    DROP COLUMN phone,
    DROP COLUMN address,
    ADD COLUMN identity BYTEA;
TRUNCATE party_blocks;
