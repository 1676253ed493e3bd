-- Organisations contain projects; every data key belongs to one project
-- and has an owner (a person's identity or a service name). Admin
-- credentials carry a role (owner, admin, member, viewer) scoped to the
-- whole instance (no org_id), one organisation (org_id) or one project
-- (org_id and project_id).
CREATE TABLE organisations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organisations (id),
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

-- Existing installations keep working: their keys land in a default
-- project of a default organisation, their admin credentials become
-- instance owners.
INSERT INTO organisations (id, name, created_at) VALUES ('org_default', 'default', 0);
INSERT INTO projects (id, org_id, name, created_at) VALUES ('proj_default', 'org_default', 'default', 0);

ALTER TABLE keys ADD COLUMN org_id TEXT;
ALTER TABLE keys ADD COLUMN project_id TEXT;
ALTER TABLE keys ADD COLUMN owner TEXT;
ALTER TABLE keys ADD COLUMN role TEXT;
UPDATE keys SET org_id = 'org_default', project_id = 'proj_default' WHERE kind = 'data';
UPDATE keys SET role = 'owner' WHERE kind = 'admin';
CREATE INDEX keys_owner ON keys (owner);
CREATE INDEX keys_project ON keys (project_id);
CREATE INDEX keys_org ON keys (org_id);

-- Keys may opt into automatic rotation: at the rotation policy's age the
-- gateway rotates the key and delivers the new secret, signed, to this URL.
ALTER TABLE keys ADD COLUMN auto_rotate_webhook TEXT;
-- When the current secret was issued: rotation reminders and automatic
-- rotation find the keys that reached the policy's age by this index.
CREATE INDEX keys_secret_issued ON keys ((COALESCE(rotated_at, created_at)));
-- Expiries are written to the audit log as they happen.
CREATE INDEX keys_expires_at ON keys (expires_at);
