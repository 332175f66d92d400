-- The linkage index keeps what matching needs (normalised name, gender, phone, places) and
-- the blocking keys of each person, so that a party's candidates are found by key, never by
-- scanning the registry.
ALTER TABLE linkage_persons
    ADD COLUMN norm_name  TEXT    NOT NULL DEFAULT '',
    ADD COLUMN male       BOOLEAN,
    ADD COLUMN phone      TEXT    NOT NULL DEFAULT '',
    ADD COLUMN township   TEXT    NOT NULL DEFAULT '',
    ADD COLUMN village    TEXT    NOT NULL DEFAULT '';
CREATE INDEX linkage_persons_norm_name ON linkage_persons (norm_name);
CREATE TABLE linkage_blocks (
    key        TEXT NOT NULL,
    person_id  UUID NOT NULL,
    PRIMARY KEY (key, person_id)
);
CREATE INDEX linkage_blocks_person ON linkage_blocks (person_id);
ALTER TABLE linkage_index_stats ADD COLUMN persons BIGINT NOT NULL DEFAULT 0;

-- Command side: a case party is reported once (case number + the case system's reference);
-- a repeat gets the first answer. The party's identity stays here, never in events.
CREATE TABLE party_refs (
    case_no    TEXT  NOT NULL,
    party_ref  TEXT  NOT NULL,
    party_id   UUID  NOT NULL,
    answer     BYTEA NOT NULL,
    PRIMARY KEY (case_no, party_ref)
);
CREATE TABLE party_identities (
    party_id     UUID PRIMARY KEY,
    full_name    TEXT NOT NULL,
    id_number    TEXT NOT NULL,
    gender       TEXT NOT NULL,
    birth_date   TEXT NOT NULL,
    phone        TEXT NOT NULL,
    region_code  TEXT NOT NULL,
    address      TEXT NOT NULL
);

-- Read model of the service's own topic: clues and where they stand.
CREATE TABLE clues (
    clue_id        UUID PRIMARY KEY,
    party_id       UUID             NOT NULL,
    case_no        TEXT             NOT NULL,
    person_id      UUID             NOT NULL,
    probability    DOUBLE PRECISION NOT NULL,
    origin         INTEGER          NOT NULL,
    explanation    TEXT             NOT NULL,
    status         INTEGER          NOT NULL,
    procuratorate  TEXT             NOT NULL,
    reason         TEXT             NOT NULL DEFAULT '',
    version        BIGINT           NOT NULL
);
CREATE INDEX clues_by_status ON clues (status, clue_id DESC);
