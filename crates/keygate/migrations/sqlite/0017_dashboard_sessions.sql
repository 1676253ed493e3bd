-- Dashboard sign-ins. The cookie holds a random session secret; only its
-- SHA-256 is stored, so a copy of the database cannot resume a session.
-- The admin credential that signed in is re-read on every request, so its
-- revocation or a role change applies at once. A sign-in through the
-- organisation's OpenID Provider has no credential: `actor` holds the role
-- and scope its rule gave (JSON), and `key_id` names it `oidc:…`.
CREATE TABLE dashboard_sessions (
    id_hash      TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    source_ip    TEXT,
    user_agent   TEXT,
    actor        TEXT
);
CREATE INDEX dashboard_sessions_expires_at ON dashboard_sessions (expires_at);
CREATE INDEX dashboard_sessions_key_id ON dashboard_sessions (key_id);
