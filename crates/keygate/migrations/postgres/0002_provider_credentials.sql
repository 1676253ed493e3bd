-- Stored provider credentials, sealed with an AES-256-GCM envelope: the
-- secret under a per-credential data key (associated data: the name), the
-- data key under the master key (which never enters the database).
CREATE TABLE provider_credentials (
    name          TEXT PRIMARY KEY,
    description   TEXT,
    hint          TEXT NOT NULL,
    data_nonce    BYTEA NOT NULL,
    ciphertext    BYTEA NOT NULL,
    key_nonce     BYTEA NOT NULL,
    wrapped_key   BYTEA NOT NULL,
    master_key_id TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
