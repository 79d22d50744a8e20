//! The queue's order as SQL, shared by the claim (`leases`), the submission (`runs`) and the
//! queue's reads (`queue`): see `crate::queue` for the order.

use super::Conn;
use crate::AccountError;
use crate::runs::Run;

/// `q` is ahead of the run whose priority, rank, creation time and id are `$1..$4`.
macro_rules! ahead_of {
    () => {
        "(q.priority > $1 OR (q.priority = $1 AND (q.queue_rank < $2 OR (q.queue_rank = $2
           AND (q.created_at < $3 OR (q.created_at = $3 AND q.id < $4))))))"
    };
}

/// `q`'s owner and team have not paused their queue.
macro_rules! not_paused {
    () => {
        "NOT EXISTS (SELECT 1 FROM users u WHERE u.id = q.user_id AND u.queue_paused <> 0)
         AND NOT EXISTS (SELECT 1 FROM teams t WHERE t.id = q.team_id AND t.queue_paused <> 0)"
    };
}

/// Where a queued run stands: its order key.
pub(super) struct OrderKey {
    pub priority: i64,
    pub rank: i64,
    pub created_at: i64,
    pub id: String,
}

impl OrderKey {
    pub(super) fn of(run: &Run) -> Self {
        Self {
            priority: run.priority,
            rank: run.queue_rank,
            created_at: run.created_at,
            id: run.id.to_string(),
        }
    }
}

/// 1 + the queued runs ahead of `key` whose queue is not paused.
pub(super) async fn position(conn: &mut Conn, key: &OrderKey) -> Result<i64, AccountError> {
    let ahead: i64 = sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM runs q WHERE q.status = 'queued' AND q.id <> $4 AND ",
        ahead_of!(),
        " AND ",
        not_paused!()
    ))
    .bind(key.priority)
    .bind(key.rank)
    .bind(key.created_at)
    .bind(&key.id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(ahead.saturating_add(1))
}

/// Where a run of `priority` accepted now would stand: behind every unpaused queued run of its
/// priority or higher. `id`: the run itself, when its row is already written (not counted).
pub(super) async fn position_of_new(conn: &mut Conn, priority: i64, id: &str) -> Result<i64, AccountError> {
    let key = OrderKey { priority, rank: 0, created_at: i64::MAX, id: id.to_owned() };
    position(conn, &key).await
}

/// Whether a queued run that could be claimed now waits ahead of `key`: its queue is not
/// paused and its user has fewer runs executing under live leases than their limit
/// (`default_limit` where the run carries none). The claim defers `key`'s run meanwhile, so the
/// database, not the order of queue entries, decides who runs next.
pub(super) async fn better_waiting(
    conn: &mut Conn,
    key: &OrderKey,
    now: i64,
    default_limit: Option<u32>,
) -> Result<bool, AccountError> {
    let default_limit = default_limit.map_or(i64::MAX, i64::from);
    let found: Option<i32> = sqlx::query_scalar(concat!(
        "SELECT 1 FROM runs q WHERE q.status = 'queued' AND q.id <> $4 AND q.cancel_requested = 0 AND ",
        ahead_of!(),
        " AND ",
        not_paused!(),
        " AND (SELECT COUNT(*) FROM runs x WHERE x.user_id = q.user_id AND x.status = 'running'
               AND x.lease_expires_at > $5) < COALESCE(q.run_limit, $6)
         LIMIT 1"
    ))
    .bind(key.priority)
    .bind(key.rank)
    .bind(key.created_at)
    .bind(&key.id)
    .bind(now)
    .bind(default_limit)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// Whether the run's user or team paused their queue.
pub(super) async fn paused(conn: &mut Conn, run: &Run) -> Result<bool, AccountError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM users WHERE id = $1 AND queue_paused <> 0
         UNION ALL SELECT 1 FROM teams WHERE id = $2 AND queue_paused <> 0",
    )
    .bind(&run.user_id)
    .bind(&run.team_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}
