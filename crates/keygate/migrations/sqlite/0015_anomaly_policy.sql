-- What an anomaly (spike, new network, odd hour) does to its key:
-- 'alert' or 'suspend'. NULL on a key: as its project says; NULL on a
-- project: 'alert'.
ALTER TABLE keys ADD COLUMN on_anomaly TEXT;
ALTER TABLE projects ADD COLUMN on_anomaly TEXT;
