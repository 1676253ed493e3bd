-- The dashboard reads usage from an hourly rollup of the ledger, never the
-- ledger itself: one row per hour (Unix ms, a multiple of 3,600,000) and
-- tenancy, provider and model as the ledger rows recorded them. Absent
-- values are stored as '' (not NULL) so the primary key, and the upsert
-- that keeps the rollup in step with the ledger (Store::append_usage, in
-- the ledger's transaction), treat them as one value.
CREATE TABLE usage_hourly (
    hour_ms           BIGINT NOT NULL,
    org_id            TEXT NOT NULL,
    project_id        TEXT NOT NULL,
    owner             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    requests          BIGINT NOT NULL,
    errors            BIGINT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    cached_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cost_nanos        BIGINT NOT NULL,
    latency_ms_sum    BIGINT NOT NULL,
    PRIMARY KEY (hour_ms, org_id, project_id, owner, provider, model)
);

-- The ledger so far.
INSERT INTO usage_hourly (hour_ms, org_id, project_id, owner, provider, model, requests,
    errors, prompt_tokens, cached_tokens, completion_tokens, cost_nanos, latency_ms_sum)
SELECT CAST(ts / 3600000 AS BIGINT) * 3600000, COALESCE(org_id, ''), COALESCE(project_id, ''),
    COALESCE(owner, ''), COALESCE(provider, ''), COALESCE(model, ''), COUNT(*),
    SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(cached_tokens),
    SUM(completion_tokens), SUM(cost_nanos), SUM(latency_ms)
FROM usage_events
GROUP BY CAST(ts / 3600000 AS BIGINT) * 3600000, COALESCE(org_id, ''), COALESCE(project_id, ''),
    COALESCE(owner, ''), COALESCE(provider, ''), COALESCE(model, '');

-- Key lists a page at a time (keyset pagination) in each order the
-- dashboard offers: newest, oldest current secret, by name.
CREATE INDEX keys_kind_created ON keys (kind, created_at, id);
CREATE INDEX keys_kind_secret_issued ON keys (kind, (COALESCE(rotated_at, created_at)), id);
CREATE INDEX keys_kind_name ON keys (kind, name, id);
