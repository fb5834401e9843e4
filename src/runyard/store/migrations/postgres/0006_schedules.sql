CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    prompt TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    paused BOOLEAN NOT NULL,
    harness TEXT,
    timeout_seconds BIGINT,
    next_run_at BIGINT,
    last_ran_at BIGINT,
    last_run_id TEXT,
    last_spawn_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX schedules_agent ON schedules (workspace_id, agent_id);
CREATE INDEX schedules_due ON schedules (next_run_at);
