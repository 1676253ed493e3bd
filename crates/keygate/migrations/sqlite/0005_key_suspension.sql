-- Suspension: a key refused until resumed (unlike revocation, reversible).
ALTER TABLE keys ADD COLUMN suspended_at BIGINT;
