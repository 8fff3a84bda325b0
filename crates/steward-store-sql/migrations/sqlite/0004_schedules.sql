-- Schedule triggers (SQLite). next_fire_at is the tick to fire next; servers advance it with a
-- compare-and-set after starting the tick's run, whose id is derived from (schedule, tick).

CREATE TABLE schedules (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    flow_name    TEXT NOT NULL,
    cron         TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    catch_up     TEXT NOT NULL CHECK (catch_up IN ('skip', 'once')),
    inputs       TEXT NOT NULL,
    next_fire_at INTEGER,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    deleted_at   INTEGER
);
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE deleted_at IS NULL;
CREATE INDEX schedules_flow ON schedules (workspace_id, flow_name);
