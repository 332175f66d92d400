-- Budgets, attempts and statements belong to an office (GB/T 2260 code of the office's region).
--
-- A procuratorate's budget is bound to the office of the finance officer who first funded it
-- (`BudgetAllocated.office`); another office may neither fund nor read it, and only
-- disbursements of cases within the office's jurisdiction draw on it. Procuratorates funded
-- before this migration have no row: the next allocation binds them.
CREATE TABLE budget_offices (
    procuratorate  TEXT PRIMARY KEY,
    office         TEXT NOT NULL
);

-- The region of the case an attempt pays, so that an office reconciles only its own payments.
-- Attempts made before this migration have none: only a nationwide role reconciles them.
ALTER TABLE attempts ADD COLUMN region_code TEXT NOT NULL DEFAULT '';

-- The office that imported a statement ('' for a nationwide role): only it reads the report.
ALTER TABLE statements ADD COLUMN office TEXT NOT NULL DEFAULT '';
