-- Agents: immutable versions of each definition, newest by version number.
CREATE TABLE agent_versions (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    source       TEXT NOT NULL,
    digest       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (workspace_id, name, version)
);

-- What agents used, per workspace, agent and day (UTC): the counters budgets read.
CREATE TABLE agent_usage (
    workspace_id  TEXT NOT NULL,
    day           TEXT NOT NULL,
    agent         TEXT NOT NULL,
    input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micros   BIGINT NOT NULL DEFAULT 0,
    model_calls   BIGINT NOT NULL DEFAULT 0,
    tool_calls    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day, agent)
);
