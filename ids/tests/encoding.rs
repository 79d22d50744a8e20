//! Typed ids and room names are stored and read back as plain text columns on both databases,
//! so changing a signature from `&str` to an id type changes nothing on disk.

use dojo_ids::{NodeId, RoomName, RunId};
use dojo_test_support::{Backend, TestDatabase};
use sqlx::Connection;

/// Writes a run id and a node id, reads them back typed and raw, on an open connection.
macro_rules! round_trip_on {
    ($conn:expr) => {{
        let conn = &mut $conn;
        let run = RunId::generate();
        let node = NodeId::from("prompt-1");
        sqlx::query("CREATE TABLE t (run TEXT NOT NULL, node TEXT NOT NULL)")
            .execute(&mut *conn)
            .await
            .expect("create");
        sqlx::query("INSERT INTO t (run, node) VALUES ($1, $2)")
            .bind(&run)
            .bind(&node)
            .execute(&mut *conn)
            .await
            .expect("insert");
        let (r, n): (RunId, NodeId) =
            sqlx::query_as("SELECT run, node FROM t").fetch_one(&mut *conn).await.expect("select");
        let raw: String = sqlx::query_scalar("SELECT run FROM t").fetch_one(&mut *conn).await.expect("raw");
        assert_eq!((r, n), (run.clone(), node));
        assert_eq!(raw, run.as_str());

        // A room name too: written as its text, read back checked.
        let room = RoomName::parse("team:acme.canvas_1").expect("a valid name");
        sqlx::query("CREATE TABLE rooms (name TEXT NOT NULL)").execute(&mut *conn).await.expect("create");
        sqlx::query("INSERT INTO rooms (name) VALUES ($1)")
            .bind(&room)
            .execute(&mut *conn)
            .await
            .expect("insert");
        let back: RoomName =
            sqlx::query_scalar("SELECT name FROM rooms").fetch_one(&mut *conn).await.expect("select");
        assert_eq!(back, room);
        let raw: String =
            sqlx::query_scalar("SELECT name FROM rooms").fetch_one(&mut *conn).await.expect("raw");
        assert_eq!(raw, room.as_str());
        let found: Option<String> = sqlx::query_scalar("SELECT name FROM rooms WHERE name = $1")
            .bind(Some(&room))
            .fetch_optional(&mut *conn)
            .await
            .expect("select by name");
        assert_eq!(found.as_deref(), Some(room.as_str()));
        // A stored name the rule refuses does not decode into a `RoomName`.
        sqlx::query("INSERT INTO rooms (name) VALUES ($1)")
            .bind("has\nnewline")
            .execute(&mut *conn)
            .await
            .expect("insert");
        let refused: Result<RoomName, sqlx::Error> =
            sqlx::query_scalar("SELECT name FROM rooms WHERE name <> $1")
                .bind(room.as_str())
                .fetch_one(&mut *conn)
                .await;
        assert!(matches!(refused, Err(sqlx::Error::ColumnDecode { .. })), "{refused:?}");
        let optional: Option<RoomName> =
            sqlx::query_scalar("SELECT CAST(NULL AS TEXT)").fetch_one(&mut *conn).await.expect("a null");
        assert_eq!(optional, None);
    }};
}

async fn round_trip(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    match backend {
        Backend::Sqlite => {
            let url = format!("{}?mode=rwc", db.url);
            let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open sqlite");
            round_trip_on!(conn);
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("open postgres");
            round_trip_on!(conn);
        }
    }
}

#[tokio::test]
async fn ids_round_trip_through_sqlite() {
    round_trip(Backend::Sqlite).await;
}

#[tokio::test]
async fn ids_round_trip_through_postgres() {
    round_trip(Backend::Postgres).await;
}
