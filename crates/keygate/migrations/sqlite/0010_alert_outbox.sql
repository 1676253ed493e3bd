-- Alerts and their webhook deliveries: a durable outbox. An alert is written
-- here before `Alerts::raise` returns, with one delivery row per channel it
-- goes to, in the same transaction; a delivery worker sends due rows and
-- records the outcome. Nothing here is secret: channels are named, never by
-- their URL, and errors are status lines, never response bodies.
CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT,
    owner       TEXT,
    message     TEXT NOT NULL,
    -- JSON object.
    details     TEXT NOT NULL,
    -- Raising an alert whose key is already here is a no-op.
    dedupe_key  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX alerts_dedupe_key ON alerts (dedupe_key);
CREATE INDEX alerts_created_at ON alerts (created_at);

CREATE TABLE alert_deliveries (
    id               TEXT PRIMARY KEY,
    alert_id         TEXT NOT NULL REFERENCES alerts (id),
    -- The configured channel's name.
    channel          TEXT NOT NULL,
    -- Attempts started (counted when a worker claims the row).
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    -- A worker's claim: no other worker takes the row before this time.
    claimed_until    BIGINT,
    claim_token      TEXT,
    delivered_at     BIGINT,
    -- Set when retries were given up.
    failed_at        BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    UNIQUE (alert_id, channel)
);
CREATE INDEX alert_deliveries_pending ON alert_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX alert_deliveries_claim ON alert_deliveries (claim_token)
    WHERE claim_token IS NOT NULL;
