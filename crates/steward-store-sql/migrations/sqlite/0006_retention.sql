-- Retention (SQLite). Each workspace's policy: days each category is kept (NULL: the default)
-- and the hosts its flows may send requests to (a JSON list; NULL: no allowlist).

CREATE TABLE workspace_policies (
    workspace_id  TEXT PRIMARY KEY,
    payload_days  INTEGER,
    error_days    INTEGER,
    metadata_days INTEGER,
    audit_days    INTEGER,
    egress_hosts  TEXT,
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT NOT NULL
);

-- When the pruner stripped a run's payloads or error details, so it does not rewrite it again.
ALTER TABLE runs ADD COLUMN payloads_pruned_at INTEGER;
ALTER TABLE runs ADD COLUMN errors_pruned_at INTEGER;
-- The pruner walks each flow's finished runs by id.
CREATE INDEX runs_finished ON runs (workspace_id, flow_name, id)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

-- Stretches of the audit chain removed by retention: the verifier steps from the entry before
-- (whose hash is prev_hash) to the entry after (whose prev_hash is last_hash).
CREATE TABLE audit_pruned (
    first_seq INTEGER PRIMARY KEY,
    last_seq  INTEGER NOT NULL UNIQUE,
    prev_hash TEXT NOT NULL,
    last_hash TEXT NOT NULL,
    pruned_at INTEGER NOT NULL
);
