-- The audit log: every administrative change and failed admin sign-in.
-- Append-only: updates and deletes are refused by the database itself.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    source_ip  TEXT,
    status     BIGINT NOT NULL,
    fields     TEXT NOT NULL
);
CREATE INDEX audit_events_ts ON audit_events (ts);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
