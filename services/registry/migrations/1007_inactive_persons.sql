-- Command side: records that take no new household membership, and why (merged into another
-- record, or erased). Bulk imports check it before placing a record in a household.
CREATE TABLE inactive_persons (
    person_id  UUID PRIMARY KEY,
    reason     TEXT NOT NULL
);
