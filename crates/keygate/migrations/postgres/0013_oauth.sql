-- OAuth 2.0 authorization server state.
--
-- The token issuer's signing keys. private_key is the PKCS#8 document
-- sealed under the master key (AES-256-GCM envelope, as stored provider
-- credentials are), never plaintext. A key signs from active_from until the
-- next key becomes active, and stays published in the JWKS until
-- published_until, so tokens it signed keep verifying until they expire.
CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    private_key     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    active_from     BIGINT NOT NULL,
    published_until BIGINT
);

-- Tokens revoked before their expiry, by jti; rows are dropped once the
-- token has expired anyway. Every node polls this table (and, on
-- PostgreSQL, is woken by a notification) so a revocation holds everywhere
-- within a second.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL,
    reason     TEXT
);
CREATE INDEX revoked_tokens_revoked_at ON revoked_tokens (revoked_at);

-- JWT-bearer assertions already used (RFC 7523 §3: jti replay), by the
-- SHA-256 of issuer and jti, until the assertion expires.
CREATE TABLE seen_assertions (
    id         TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX seen_assertions_expires_at ON seen_assertions (expires_at);

-- Public keys of service accounts (the account itself is a key record of
-- kind 'service_account' that carries its policy and limits).
CREATE TABLE service_account_keys (
    kid         TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    alg         TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX service_account_keys_account ON service_account_keys (account_id);
CREATE INDEX service_account_keys_updated_at ON service_account_keys (updated_at);

-- Trusted OIDC issuers for token exchange (workload identity federation).
-- Each rule is bound to a key record of kind 'workload' whose policy and
-- limits bound every token it mints.
CREATE TABLE trusted_issuers (
    id          TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    jwks_uri    TEXT,
    jwks        TEXT,
    audience    TEXT NOT NULL,
    claims      TEXT NOT NULL,
    token_ttl_ms BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX trusted_issuers_updated_at ON trusted_issuers (updated_at);

-- Which token a request used (NULL: a key).
-- A token minted with a budget of its own has its spend summed from here
-- (partial: rows of keys, the vast majority, cost the index nothing).
ALTER TABLE usage_events ADD COLUMN token_id TEXT;
CREATE INDEX usage_events_token_ts ON usage_events (token_id, ts) WHERE token_id IS NOT NULL;

-- A revocation is announced like a key change, so every node drops the
-- token at once rather than at its next poll.
CREATE OR REPLACE FUNCTION keygate_token_revoked() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('keygate_keys', NEW.jti);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER keygate_token_revoked
    AFTER INSERT OR UPDATE ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION keygate_token_revoked();
