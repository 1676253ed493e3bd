-- When the key's current secret was issued by a rotation (NULL: at creation);
-- drives the rotation policy's age flag.
ALTER TABLE keys ADD COLUMN rotated_at BIGINT;
