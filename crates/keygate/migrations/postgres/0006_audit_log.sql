-- The audit log: every administrative change and failed admin sign-in.
-- Append-only: updates and deletes are refused by the database itself.
CREATE TABLE audit_events (
    id         BIGSERIAL PRIMARY KEY,
    ts         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    source_ip  TEXT,
    status     BIGINT NOT NULL,
    fields     TEXT NOT NULL
);
CREATE INDEX audit_events_ts ON audit_events (ts);

CREATE OR REPLACE FUNCTION keygate_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION keygate_audit_append_only();
