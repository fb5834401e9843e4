CREATE TABLE environment_teardowns (
    agent_id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
