-- Webhook triggers (PostgreSQL). The URL's secret path is stored only as a digest. The signing
-- secret must be readable to check signatures; it moves into the encrypted vault with
-- connections.

CREATE TABLE webhooks (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL,
    flow_name      TEXT NOT NULL,
    path_digest    TEXT NOT NULL UNIQUE,
    scheme         TEXT NOT NULL CHECK (scheme IN ('none', 'github', 'stripe', 'slack', 'generic')),
    signing_secret TEXT,
    mode           TEXT NOT NULL CHECK (mode IN ('async', 'sync')),
    sync_timeout_ms BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX webhooks_flow ON webhooks (workspace_id, flow_name);
