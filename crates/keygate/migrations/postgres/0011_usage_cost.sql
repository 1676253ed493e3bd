-- Ledger rows carry money and tenancy: the cached share of the prompt, the
-- cost in nanodollars (billionths of a US dollar) by the price table in
-- force when the request was answered, and the key's owner, project and
-- organisation at that moment, so that spend stays with whoever held the
-- key when it was spent even if the key moves later.
ALTER TABLE usage_events ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN cost_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_events ADD COLUMN owner TEXT;
ALTER TABLE usage_events ADD COLUMN project_id TEXT;
ALTER TABLE usage_events ADD COLUMN org_id TEXT;

-- Rows recorded before this migration take their key's current tenancy
-- (the best that is known of them); their cost stays 0, as no price was
-- recorded for them.
UPDATE usage_events SET
    owner = (SELECT k.owner FROM keys k WHERE k.id = usage_events.key_id),
    project_id = (SELECT k.project_id FROM keys k WHERE k.id = usage_events.key_id),
    org_id = (SELECT k.org_id FROM keys k WHERE k.id = usage_events.key_id)
WHERE key_id IS NOT NULL;

-- Spend since a period's start, per budget subject (Store::spent_since),
-- and reports filtered by owner or project.
CREATE INDEX usage_events_org_ts ON usage_events (org_id, ts);
CREATE INDEX usage_events_project_ts ON usage_events (project_id, ts);
CREATE INDEX usage_events_owner_ts ON usage_events (owner, ts);
