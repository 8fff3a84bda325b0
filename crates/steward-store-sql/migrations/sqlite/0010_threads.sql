-- Chat threads: conversations with an agent. Each message is what a person wrote, with the run
-- that answers it (the answer is that run's output, kept and pruned with the run).
CREATE TABLE agent_threads (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    agent        TEXT NOT NULL,
    title        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
-- Listing a workspace's threads, the most recently active first.
CREATE INDEX agent_threads_recent ON agent_threads (workspace_id, updated_at);

CREATE TABLE agent_thread_messages (
    thread_id    TEXT NOT NULL REFERENCES agent_threads (id),
    seq          INTEGER NOT NULL,
    workspace_id TEXT NOT NULL,
    content      TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (thread_id, seq)
);
-- Transcript retention removes a workspace's messages by age.
CREATE INDEX agent_thread_messages_age ON agent_thread_messages (workspace_id, created_at);

-- Days a workspace keeps the messages of its threads (NULL: the default).
ALTER TABLE workspace_policies ADD COLUMN transcript_days INTEGER;
