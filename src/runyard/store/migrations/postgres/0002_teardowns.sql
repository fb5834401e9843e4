CREATE TABLE environment_teardowns (
    agent_id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0
);
