CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    kind TEXT NOT NULL,
    agent_id TEXT,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    last_used_at INTEGER
);
CREATE INDEX api_keys_scope ON api_keys (workspace_id, agent_id);
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    model_policy TEXT NOT NULL,
    harness_targets TEXT NOT NULL,
    capability_bindings TEXT NOT NULL,
    runtime_policy TEXT NOT NULL,
    env_status TEXT NOT NULL,
    env_attention TEXT NOT NULL,
    env_created_at INTEGER NOT NULL,
    env_updated_at INTEGER NOT NULL,
    env_ready_at INTEGER,
    env_last_error TEXT,
    recon_status TEXT NOT NULL,
    recon_error TEXT,
    UNIQUE (workspace_id, slug)
);
CREATE INDEX agents_env ON agents (env_status, env_updated_at);
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    started_at INTEGER,
    completed_at INTEGER,
    input TEXT NOT NULL,
    harness_requested TEXT,
    harness_resolved TEXT,
    request TEXT NOT NULL,
    timeout_seconds INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    concurrency_limit INTEGER NOT NULL DEFAULT 1,
    output TEXT,
    error_code TEXT,
    error_message TEXT,
    error_retryable INTEGER,
    warnings TEXT,
    token_usage TEXT,
    tool_usage TEXT,
    evidence TEXT,
    session_id TEXT,
    source TEXT NOT NULL DEFAULT 'API',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires_at INTEGER
);
CREATE INDEX runs_queue ON runs (status, seq);
CREATE INDEX runs_agent ON runs (workspace_id, agent_id, seq);
CREATE INDEX runs_agent_status ON runs (agent_id, status);
CREATE INDEX runs_lease ON runs (status, lease_expires_at);
