CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    secret_ciphertext TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_workspace ON webhooks (workspace_id, enabled);
CREATE TABLE webhook_deliveries (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_token TEXT,
    lease_expires_at BIGINT,
    response_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    run_agent_id TEXT NOT NULL,
    run_status TEXT NOT NULL,
    run_source TEXT NOT NULL,
    run_created_at BIGINT NOT NULL,
    run_started_at BIGINT,
    run_completed_at BIGINT,
    run_error_code TEXT,
    run_error_message TEXT,
    run_error_retryable BOOLEAN
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_lease ON webhook_deliveries (lease_expires_at)
    WHERE status = 'delivering';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, seq);
