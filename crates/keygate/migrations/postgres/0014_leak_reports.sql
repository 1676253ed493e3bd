-- Keys reported as leaked by a secret-scanning partner (GitHub's partner
-- format): where each was found, for the owner's alert and for the
-- exposure window of `keygate incident`. The token itself is never stored,
-- only the key it belongs to.
CREATE TABLE leak_reports (
    id          TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL,
    token_type  TEXT NOT NULL,
    url         TEXT,
    source      TEXT,
    reporter    TEXT NOT NULL,
    reported_at BIGINT NOT NULL
);
CREATE INDEX leak_reports_key ON leak_reports (key_id, reported_at);
