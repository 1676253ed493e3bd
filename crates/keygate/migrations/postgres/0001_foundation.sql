-- Keys are stored only as HMAC-SHA256 digests under the server secret.
CREATE TABLE keys (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    env           TEXT NOT NULL,
    secret_hash   TEXT NOT NULL UNIQUE,
    hint          TEXT NOT NULL,
    models        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    revoke_reason TEXT,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX keys_updated_at ON keys (updated_at);

-- The usage ledger: one row per request, accepted or refused.
CREATE TABLE usage_events (
    request_id        TEXT PRIMARY KEY,
    ts                BIGINT NOT NULL,
    key_id            TEXT,
    route             TEXT NOT NULL,
    model             TEXT,
    provider          TEXT,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    status            BIGINT NOT NULL,
    error_code        TEXT,
    latency_ms        BIGINT NOT NULL,
    streamed          BIGINT NOT NULL,
    source_ip         TEXT,
    user_agent        TEXT
);
CREATE INDEX usage_events_ts ON usage_events (ts);
CREATE INDEX usage_events_key_ts ON usage_events (key_id, ts);

CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
