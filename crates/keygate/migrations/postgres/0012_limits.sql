-- Limits on keys, projects, organisations and owners (every key of one
-- owner within an organisation): requests and tokens per minute, requests
-- in flight, and a spending budget per calendar period. NULL everywhere
-- means "no limit of that kind". Money is in nanodollars (billionths of a
-- US dollar); budget_alerts is a comma list of percentages ("50,80,100"),
-- NULL for the gateway's default thresholds, "" for none.
ALTER TABLE keys ADD COLUMN rpm BIGINT;
ALTER TABLE keys ADD COLUMN tpm BIGINT;
ALTER TABLE keys ADD COLUMN max_concurrent BIGINT;
ALTER TABLE keys ADD COLUMN budget_nanos BIGINT;
ALTER TABLE keys ADD COLUMN budget_period TEXT;
ALTER TABLE keys ADD COLUMN budget_alerts TEXT;

ALTER TABLE projects ADD COLUMN rpm BIGINT;
ALTER TABLE projects ADD COLUMN tpm BIGINT;
ALTER TABLE projects ADD COLUMN max_concurrent BIGINT;
ALTER TABLE projects ADD COLUMN budget_nanos BIGINT;
ALTER TABLE projects ADD COLUMN budget_period TEXT;
ALTER TABLE projects ADD COLUMN budget_alerts TEXT;
-- Every node polls for limits changed after the newest change it has seen
-- (about once a second), so each table that holds limits is indexed by it.
ALTER TABLE projects ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX projects_updated_at ON projects (updated_at);

-- Organisations carry only a budget, and may be prepaid: prepaid_nanos is
-- everything ever topped up (NULL: not prepaid); spend is charged against it.
ALTER TABLE organisations ADD COLUMN budget_nanos BIGINT;
ALTER TABLE organisations ADD COLUMN budget_period TEXT;
ALTER TABLE organisations ADD COLUMN budget_alerts TEXT;
ALTER TABLE organisations ADD COLUMN prepaid_nanos BIGINT;
ALTER TABLE organisations ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX organisations_updated_at ON organisations (updated_at);

-- One budget per owner within an organisation. Removing a budget keeps
-- its row with deleted_at set (a tombstone), so the nodes that poll for
-- changes learn of the removal like of any other change; setting a budget
-- again clears deleted_at.
CREATE TABLE owner_budgets (
    org_id        TEXT NOT NULL REFERENCES organisations (id),
    owner         TEXT NOT NULL,
    budget_nanos  BIGINT NOT NULL,
    budget_period TEXT NOT NULL,
    budget_alerts TEXT,
    updated_at    BIGINT NOT NULL,
    deleted_at    BIGINT,
    PRIMARY KEY (org_id, owner)
);
CREATE INDEX owner_budgets_updated_at ON owner_budgets (updated_at);

-- Every top-up of a prepaid balance, with the admin credential that made
-- it: the balance's history. Append-only, like the audit log.
CREATE TABLE balance_topups (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organisations (id),
    amount_nanos BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    actor        TEXT NOT NULL
);
CREATE INDEX balance_topups_org ON balance_topups (org_id, created_at);

CREATE OR REPLACE FUNCTION keygate_topups_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'balance top-ups are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER balance_topups_append_only
    BEFORE UPDATE OR DELETE ON balance_topups
    FOR EACH ROW EXECUTE FUNCTION keygate_topups_append_only();
