//! The column lists every backend selects, as macros so that `concat!` can build `&'static str`
//! statements (sqlx takes only those without an explicit `AssertSqlSafe`). Declared first in
//! `lib.rs`, so every module after it can use them.

macro_rules! user_columns {
    () => {
        "id, subject, name, email, credits, created_at, updated_at"
    };
}

macro_rules! workflow_columns {
    () => {
        "id, room, owner_id, title, public, created_at, updated_at, team_id"
    };
}

macro_rules! ledger_columns {
    () => {
        "id, user_id, amount, balance_after, reason, idempotency_key, created_at"
    };
}

macro_rules! run_columns {
    () => {
        "id, room, user_id, status, graph, targets, estimate, charged, cancel_requested, attempts, \
         lease_owner, lease_expires_at, error, created_at, started_at, finished_at, team_id"
    };
}

macro_rules! node_columns {
    () => {
        "run_id, node_id, node_type, state, cost, charged, hold_state, params, outputs, error, \
         started_at, finished_at"
    };
}
