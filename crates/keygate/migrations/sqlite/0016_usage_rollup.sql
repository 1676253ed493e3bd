-- The dashboard reads usage from rollups of the ledger, never the ledger
-- itself, each sized by time rather than by the number of keys or owners:
--
--   usage_hourly        one row per hour (Unix ms, a multiple of 3,600,000),
--                       tenancy, provider and model; no owner.
--   usage_daily         one row per UTC day (Unix ms, a multiple of
--                       86,400,000), tenancy, owner, provider and model: the
--                       explorer's owner reports.
--   usage_daily_totals  usage_daily summed over owners: whole days of
--                       summaries, day-bucketed charts and long reports.
--
-- Values as the ledger rows recorded them; absent ones are stored as ''
-- (not NULL) so the primary keys, and the upserts that keep the rollups in
-- step with the ledger (Store::append_usage, in the ledger's transaction,
-- counting each inserted row once), treat them as one value. Each is
-- backfilled from the ledger so far (the daily totals from usage_daily,
-- which holds the same sums per owner).
CREATE TABLE usage_hourly (
    hour_ms           INTEGER NOT NULL,
    org_id            TEXT NOT NULL,
    project_id        TEXT NOT NULL,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    requests          INTEGER NOT NULL,
    errors            INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_nanos        INTEGER NOT NULL,
    latency_ms_sum    INTEGER NOT NULL,
    PRIMARY KEY (hour_ms, org_id, project_id, provider, model)
);

INSERT INTO usage_hourly (hour_ms, org_id, project_id, provider, model, requests,
    errors, prompt_tokens, cached_tokens, completion_tokens, cost_nanos, latency_ms_sum)
SELECT CAST(ts / 3600000 AS BIGINT) * 3600000, COALESCE(org_id, ''), COALESCE(project_id, ''),
    COALESCE(provider, ''), COALESCE(model, ''), COUNT(*),
    SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(cached_tokens),
    SUM(completion_tokens), SUM(cost_nanos), SUM(latency_ms)
FROM usage_events
GROUP BY CAST(ts / 3600000 AS BIGINT) * 3600000, COALESCE(org_id, ''), COALESCE(project_id, ''),
    COALESCE(provider, ''), COALESCE(model, '');

CREATE TABLE usage_daily (
    day_ms            INTEGER NOT NULL,
    org_id            TEXT NOT NULL,
    project_id        TEXT NOT NULL,
    owner             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    requests          INTEGER NOT NULL,
    errors            INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_nanos        INTEGER NOT NULL,
    latency_ms_sum    INTEGER NOT NULL,
    PRIMARY KEY (day_ms, org_id, project_id, owner, provider, model)
);

INSERT INTO usage_daily (day_ms, org_id, project_id, owner, provider, model, requests,
    errors, prompt_tokens, cached_tokens, completion_tokens, cost_nanos, latency_ms_sum)
SELECT CAST(ts / 86400000 AS BIGINT) * 86400000, COALESCE(org_id, ''), COALESCE(project_id, ''),
    COALESCE(owner, ''), COALESCE(provider, ''), COALESCE(model, ''), COUNT(*),
    SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(cached_tokens),
    SUM(completion_tokens), SUM(cost_nanos), SUM(latency_ms)
FROM usage_events
GROUP BY CAST(ts / 86400000 AS BIGINT) * 86400000, COALESCE(org_id, ''), COALESCE(project_id, ''),
    COALESCE(owner, ''), COALESCE(provider, ''), COALESCE(model, '');

CREATE TABLE usage_daily_totals (
    day_ms            INTEGER NOT NULL,
    org_id            TEXT NOT NULL,
    project_id        TEXT NOT NULL,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    requests          INTEGER NOT NULL,
    errors            INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_nanos        INTEGER NOT NULL,
    latency_ms_sum    INTEGER NOT NULL,
    PRIMARY KEY (day_ms, org_id, project_id, provider, model)
);

INSERT INTO usage_daily_totals (day_ms, org_id, project_id, provider, model, requests,
    errors, prompt_tokens, cached_tokens, completion_tokens, cost_nanos, latency_ms_sum)
SELECT day_ms, org_id, project_id, provider, model, SUM(requests), SUM(errors),
    SUM(prompt_tokens), SUM(cached_tokens), SUM(completion_tokens), SUM(cost_nanos),
    SUM(latency_ms_sum)
FROM usage_daily
GROUP BY day_ms, org_id, project_id, provider, model;

-- Key lists a page at a time (keyset pagination) in each order the
-- dashboard offers: newest, oldest current secret, by name.
CREATE INDEX keys_kind_created ON keys (kind, created_at, id);
CREATE INDEX keys_kind_secret_issued ON keys (kind, COALESCE(rotated_at, created_at), id);
CREATE INDEX keys_kind_name ON keys (kind, name, id);
-- Key counts by state: every column the count reads, in scope order, so it
-- reads this index alone, never the table.
CREATE INDEX keys_kind_state ON keys (kind, org_id, project_id, revoked_at, suspended_at,
    expires_at);
