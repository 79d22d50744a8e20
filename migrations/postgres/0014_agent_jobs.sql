-- The agents' job queue (issue 23): a general durable queue on the same database as runs, for
-- the studio's internal agents (support, fraud, workflow suggestions, re-engagement), with
-- scheduled jobs, and the staff roles allowed to use it. Owned by dojo-records (`JobStore`).
-- Expand-only: new tables.

-- Who may use the job queue and see what agents do: `staff` (enqueue, claim, complete, list)
-- or `admin` (also schedules). Granted at the command line (`dojo-server admin grant-staff`),
-- never through the API. Separate from `users` so that no existing query of users changes.
CREATE TABLE staff_roles (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('staff', 'admin')),
    granted_at BIGINT NOT NULL,
    granted_by TEXT NOT NULL
);

CREATE TABLE agent_jobs (
    id TEXT PRIMARY KEY,
    job_type TEXT NOT NULL,
    -- JSON, at most 64 KiB (checked before insert).
    payload TEXT NOT NULL,
    -- Higher first.
    priority INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    -- Not claimed before this time: the backoff after a failure, or a delayed job.
    run_after BIGINT NOT NULL,
    -- The claim: who holds the job and until when. A running job whose lease has passed is
    -- claimable again (its worker died), as runs are.
    lease_owner TEXT,
    lease_expires_at BIGINT,
    last_error TEXT,
    -- JSON, at most 64 KiB.
    result TEXT,
    -- Enqueuing twice with one key gives one job (schedules use `schedule:NAME:SLOT`).
    idempotency_key TEXT UNIQUE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);

-- Claiming: the best queued job of some types whose time has come.
CREATE INDEX agent_jobs_claimable ON agent_jobs (status, job_type, priority DESC, run_after, created_at);
-- Listing by status, newest first.
CREATE INDEX agent_jobs_by_status ON agent_jobs (status, created_at DESC);

-- Periodic agents: a cron expression that enqueues a job of a type with a payload.
CREATE TABLE agent_schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    job_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL,
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    -- The next slot to enqueue (milliseconds); advanced past `now` at every tick.
    next_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Support tickets (the support agent): a user asks for help, with the canvas attached; the agent
-- drafts an answer, staff approve or edit it, and only then does the user see it. Deleted with
-- the user who asked (it is theirs); who answered becomes a pseudonym when that staff account
-- is deleted.
CREATE TABLE support_tickets (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The canvas's room, when one was attached (the asker could read it then).
    room TEXT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    -- open: waiting for the agent's draft; drafted: waiting for staff; answered: the user sees it.
    status TEXT NOT NULL CHECK (status IN ('open', 'drafted', 'answered')),
    draft TEXT,
    -- `model` (the language model wrote it) or `fallback` (the deterministic template).
    draft_source TEXT,
    answer TEXT,
    answered_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    answered_at BIGINT
);

CREATE INDEX support_tickets_user ON support_tickets (user_id, created_at DESC);
CREATE INDEX support_tickets_status ON support_tickets (status, created_at);
