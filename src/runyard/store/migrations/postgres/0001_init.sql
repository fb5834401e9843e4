CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    kind TEXT NOT NULL,
    agent_id TEXT,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_keys_scope ON api_keys (workspace_id, agent_id);
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    model_policy TEXT NOT NULL,
    harness_targets TEXT NOT NULL,
    capability_bindings TEXT NOT NULL,
    runtime_policy TEXT NOT NULL,
    env_status TEXT NOT NULL,
    env_attention TEXT NOT NULL,
    env_created_at BIGINT NOT NULL,
    env_updated_at BIGINT NOT NULL,
    env_ready_at BIGINT,
    env_last_error TEXT,
    recon_status TEXT NOT NULL,
    recon_error TEXT,
    UNIQUE (workspace_id, slug)
);
CREATE INDEX agents_env ON agents (env_status, env_updated_at);
CREATE TABLE runs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    started_at BIGINT,
    completed_at BIGINT,
    input TEXT NOT NULL,
    harness_requested TEXT,
    harness_resolved TEXT,
    request TEXT NOT NULL,
    timeout_seconds BIGINT NOT NULL,
    attempt BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL DEFAULT 1,
    concurrency_limit BIGINT NOT NULL DEFAULT 1,
    output TEXT,
    error_code TEXT,
    error_message TEXT,
    error_retryable BOOLEAN,
    warnings TEXT,
    token_usage TEXT,
    tool_usage TEXT,
    evidence TEXT,
    session_id TEXT,
    source TEXT NOT NULL DEFAULT 'API',
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires_at BIGINT
);
CREATE INDEX runs_queue ON runs (status, seq);
CREATE INDEX runs_agent ON runs (workspace_id, agent_id, seq);
CREATE INDEX runs_agent_status ON runs (agent_id, status);
CREATE INDEX runs_lease ON runs (status, lease_expires_at);
