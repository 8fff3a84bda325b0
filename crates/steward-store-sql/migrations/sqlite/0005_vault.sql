-- The vault (SQLite): each workspace's data key, wrapped by the master key (which is
-- never stored), and connections, whose secret values are stored sealed with that data key.

CREATE TABLE workspace_keys (
    workspace_id  TEXT PRIMARY KEY,
    wrapped       TEXT NOT NULL,
    master_key_id TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    rotated_at    INTEGER
);

CREATE TABLE connections (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL
        CHECK (kind IN ('api_key', 'bearer', 'basic', 'headers', 'oauth2_client_credentials')),
    hosts        TEXT NOT NULL,
    settings     TEXT NOT NULL,
    sealed       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    rotated_at   INTEGER,
    revoked_at   INTEGER,
    deleted_at   INTEGER,
    UNIQUE (workspace_id, name)
);
