-- Steward schema, PostgreSQL. Timestamps are milliseconds since the Unix epoch; JSON is TEXT.
-- Append-only: change the schema with a new numbered file, never by editing this one.

CREATE TABLE flows (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    deleted_at   BIGINT,
    UNIQUE (workspace_id, name)
);

CREATE TABLE flow_versions (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    flow_id      TEXT NOT NULL REFERENCES flows (id),
    version      BIGINT NOT NULL,
    file_name    TEXT NOT NULL,
    source       TEXT NOT NULL,
    digest       TEXT NOT NULL,
    concurrency  BIGINT,
    created_at   BIGINT NOT NULL,
    UNIQUE (flow_id, version)
);

CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL,
    flow_version_id   TEXT NOT NULL REFERENCES flow_versions (id),
    flow_name         TEXT NOT NULL,
    status            TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled')),
    inputs            TEXT NOT NULL,
    output            TEXT,
    error             TEXT,
    parent_run_id     TEXT REFERENCES runs (id),
    parent_step_key   TEXT,
    concurrency_key   TEXT,
    concurrency_limit BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    finished_at       BIGINT,
    wake_at           BIGINT,
    lease_owner       TEXT,
    lease_expires_at  BIGINT
);

-- Claiming and next_due: unfinished runs by due time.
CREATE INDEX runs_due ON runs (wake_at, id)
    WHERE status IN ('queued', 'running', 'waiting') AND wake_at IS NOT NULL;
-- Counting live leases per concurrency key.
CREATE INDEX runs_concurrency ON runs (concurrency_key, lease_expires_at)
    WHERE concurrency_key IS NOT NULL;
-- Listing, newest first.
CREATE INDEX runs_list ON runs (workspace_id, created_at, id);
CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

CREATE TABLE run_events (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    seq      BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    step_key TEXT,
    data     TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE run_signals (
    id           BIGSERIAL PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs (id),
    workspace_id TEXT NOT NULL,
    data         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    consumed_at  BIGINT
);

CREATE INDEX run_signals_pending ON run_signals (run_id, id) WHERE consumed_at IS NULL;
