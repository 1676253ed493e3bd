-- Per-key policy: route scopes and source networks (JSON arrays; empty
-- means no restriction), a description and free-form metadata (JSON object).
ALTER TABLE keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE keys ADD COLUMN allow_ips TEXT NOT NULL DEFAULT '[]';
ALTER TABLE keys ADD COLUMN description TEXT;
ALTER TABLE keys ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
