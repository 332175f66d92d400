-- A person's household is looked up by person (registrations arriving after their household
-- join, the person view); without this index each lookup scans every membership.
CREATE INDEX household_members_person ON household_members (person_id);
