CREATE TABLE capabilities (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    evidence_status TEXT,
    evidence_error TEXT,
    evidence_updated_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (agent_id, kind, name)
);
CREATE INDEX capabilities_agent ON capabilities (workspace_id, agent_id);
ALTER TABLE agents ADD COLUMN capability_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN recon_generation INTEGER NOT NULL DEFAULT 0;
