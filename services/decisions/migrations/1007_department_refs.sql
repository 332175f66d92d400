-- The references departments know cases by (`jiuzhu_sharing::case_ref`: a referral's id, a
-- shared case's `case_id`), written in the transaction that appends the events handing the
-- case over: what a department quotes back is looked up here, never parsed for the case id.
CREATE TABLE department_refs (
    department TEXT NOT NULL,
    reference  TEXT NOT NULL,
    case_id    UUID NOT NULL,
    PRIMARY KEY (department, reference)
);
