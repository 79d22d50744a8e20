//! The column lists every backend selects, as macros so that `concat!` can build `&'static str`
//! statements (sqlx takes only those without an explicit `AssertSqlSafe`). Declared first in
//! `lib.rs`, so every module after it can use them.

macro_rules! user_columns {
    () => {
        "id, subject, name, email, credits, created_at, updated_at, \
         (analytics_opt_out <> 0) AS analytics_opt_out"
    };
}

macro_rules! workflow_columns {
    () => {
        "id, room, owner_id, title, public, created_at, updated_at, team_id"
    };
}

macro_rules! ledger_columns {
    () => {
        "id, user_id, amount, balance_after, reason, idempotency_key, created_at, team_id"
    };
}

macro_rules! run_columns {
    () => {
        "id, room, user_id, status, graph, targets, estimate, charged, cancel_requested, attempts, \
         lease_owner, lease_expires_at, error, created_at, started_at, finished_at, team_id, priority, \
         queue_rank, run_limit, max_run_ms, batch_id, batch_index, batch_params, granted_assets"
    };
}

/// What a node of a run billed to a team counts toward its member's monthly spend (`n` the
/// `run_nodes` row): its charge once captured, its cost while held, nothing once released.
macro_rules! spend_expr {
    () => {
        "CASE n.hold_state WHEN 'captured' THEN n.charged WHEN 'pending' THEN n.cost ELSE 0 END"
    };
}

macro_rules! node_columns {
    () => {
        "run_id, node_id, node_type, state, cost, charged, hold_state, params, outputs, error, \
         started_at, finished_at"
    };
}

/// The workflows an account deletion removes (a WHERE clause on `workflows`, `$1` the user):
/// theirs, outside any team that keeps another member. Soft-deleted ones included: their rows
/// still name the owner.
macro_rules! doomed_workflows {
    () => {
        "owner_id = $1 AND (team_id IS NULL OR NOT EXISTS (
             SELECT 1 FROM team_members o WHERE o.team_id = workflows.team_id AND o.user_id <> $1))"
    };
}
