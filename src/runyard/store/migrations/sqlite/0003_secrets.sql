CREATE TABLE secrets (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    projection_name TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    value_length INTEGER NOT NULL,
    agent_ids TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
);
