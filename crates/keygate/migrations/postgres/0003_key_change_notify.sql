-- Every change to a key (created, updated, revoked) is announced on the
-- `keygate_keys` channel with the key's id, so every node refreshes its
-- verification cache at once instead of at its next poll. Polling stays as
-- the bound: a lost notification (a node reconnecting) cannot keep a
-- revoked key alive longer than the refresh interval.
CREATE OR REPLACE FUNCTION keygate_key_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('keygate_keys', NEW.id);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER keygate_key_changed
    AFTER INSERT OR UPDATE ON keys
    FOR EACH ROW EXECUTE FUNCTION keygate_key_changed();
