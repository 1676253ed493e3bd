-- Rotation with overlap: the secret a rotation replaced keeps working until
-- `previous_expires_at` (Unix ms), then stops by itself.
ALTER TABLE keys ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE keys ADD COLUMN previous_expires_at BIGINT;
