-- Same schema and semantics as migrations/postgres/0014_agent_jobs.sql (the comments there say
-- why); dialect only differs: STRICT tables, INTEGER for BIGINT.

CREATE TABLE staff_roles (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('staff', 'admin')),
    granted_at INTEGER NOT NULL,
    granted_by TEXT NOT NULL
) STRICT;

CREATE TABLE agent_jobs (
    id TEXT PRIMARY KEY,
    job_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    run_after INTEGER NOT NULL,
    lease_owner TEXT,
    lease_expires_at INTEGER,
    last_error TEXT,
    result TEXT,
    idempotency_key TEXT UNIQUE,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
) STRICT;

CREATE INDEX agent_jobs_claimable ON agent_jobs (status, job_type, priority DESC, run_after, created_at);
CREATE INDEX agent_jobs_by_status ON agent_jobs (status, created_at DESC);

CREATE TABLE agent_schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    job_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    next_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE support_tickets (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'drafted', 'answered')),
    draft TEXT,
    draft_source TEXT,
    answer TEXT,
    answered_by TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    answered_at INTEGER
) STRICT;

CREATE INDEX support_tickets_user ON support_tickets (user_id, created_at DESC);
CREATE INDEX support_tickets_status ON support_tickets (status, created_at);
