CREATE TABLE run_steps (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    content TEXT,
    sources TEXT NOT NULL,
    metadata TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    completed_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id);
CREATE INDEX runs_workspace_created ON runs (workspace_id, created_at, seq);
CREATE INDEX runs_workspace_updated ON runs (workspace_id, updated_at, seq);
CREATE INDEX runs_workspace_seq ON runs (workspace_id, seq);
