CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    secret_ciphertext TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX webhooks_workspace ON webhooks (workspace_id, enabled);
CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_token TEXT,
    lease_expires_at INTEGER,
    response_status INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    run_agent_id TEXT NOT NULL,
    run_status TEXT NOT NULL,
    run_source TEXT NOT NULL,
    run_created_at INTEGER NOT NULL,
    run_started_at INTEGER,
    run_completed_at INTEGER,
    run_error_code TEXT,
    run_error_message TEXT,
    run_error_retryable INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_lease ON webhook_deliveries (lease_expires_at)
    WHERE status = 'delivering';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, seq);
