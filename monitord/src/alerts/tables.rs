//! The alert tables (`migrations/2026-11-28-120000_alerts`): the state of each (client, rule)
//! that is not ok, and the outbox, one row per (mail, recipient).
//!
//! Every function takes the caller's connection, so the writer can run them inside its batch
//! transaction. Not here: deciding anything (see [`super::machine`]) or talking SMTP.

use diesel::prelude::*;

use super::machine::{Phase, RuleState};

diesel::table! {
    alert_states (client, rule) {
        client -> Text,
        rule -> Text,
        phase -> Text,
        since_ms -> BigInt,
        notified_ms -> BigInt,
        value -> Double,
        detail -> Nullable<Text>,
        changed_ms -> BigInt,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        message_id -> Text,
        recipient -> Text,
        client -> Text,
        rule -> Text,
        subject -> Text,
        body -> Text,
        created_ms -> BigInt,
        status -> Text,
        attempts -> Integer,
        next_attempt_ms -> BigInt,
        last_error -> Nullable<Text>,
        done_ms -> Nullable<BigInt>,
    }
}

/// The name the built-in host-down rule is stored under.
pub const HOST_DOWN_RULE: &str = "down";

/// One stored state, as read back.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = alert_states)]
pub struct StateRow {
    pub client: String,
    pub rule: String,
    pub phase: String,
    pub since_ms: i64,
    pub notified_ms: i64,
    pub value: f64,
    pub detail: Option<String>,
    pub changed_ms: i64,
}

impl StateRow {
    pub fn state(&self) -> RuleState {
        RuleState {
            phase: Phase::from_name(&self.phase).unwrap_or(Phase::Ok),
            since_ms: self.since_ms,
            notified_ms: self.notified_ms,
            value: self.value,
        }
    }
}

pub fn load_states(conn: &mut SqliteConnection) -> QueryResult<Vec<StateRow>> {
    alert_states::table
        .select(StateRow::as_select())
        .order((alert_states::client, alert_states::rule))
        .load(conn)
}

/// Stores `state` for (client, rule); an ok state is stored as no row at all.
pub fn save_state(
    conn: &mut SqliteConnection,
    client: &str,
    rule: &str,
    state: &RuleState,
    detail: Option<&str>,
    now_ms: i64,
) -> QueryResult<()> {
    if state.phase == Phase::Ok {
        return delete_state(conn, client, rule);
    }
    let row = StateRow {
        client: client.to_owned(),
        rule: rule.to_owned(),
        phase: state.phase.as_str().to_owned(),
        since_ms: state.since_ms,
        notified_ms: state.notified_ms,
        value: state.value,
        detail: detail.map(str::to_owned),
        changed_ms: now_ms,
    };
    diesel::insert_into(alert_states::table)
        .values(&row)
        .on_conflict((alert_states::client, alert_states::rule))
        .do_update()
        .set(&row)
        .execute(conn)?;
    Ok(())
}

pub fn delete_state(conn: &mut SqliteConnection, client: &str, rule: &str) -> QueryResult<()> {
    diesel::delete(
        alert_states::table
            .filter(alert_states::client.eq(client))
            .filter(alert_states::rule.eq(rule)),
    )
    .execute(conn)?;
    Ok(())
}

/// A mail to one recipient, as it enters the outbox.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewOutboxRow<'a> {
    pub message_id: &'a str,
    pub recipient: &'a str,
    pub client: &'a str,
    pub rule: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub created_ms: i64,
    pub next_attempt_ms: i64,
}

pub fn insert_outbox(conn: &mut SqliteConnection, rows: &[NewOutboxRow<'_>]) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values(rows)
        .execute(conn)?;
    Ok(())
}

/// One outbox row, as the sender and `monitord alerts` read it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub message_id: String,
    pub recipient: String,
    pub client: String,
    pub rule: String,
    pub subject: String,
    pub body: String,
    pub created_ms: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub done_ms: Option<i64>,
}

/// Pending rows whose time has come, oldest first.
pub fn due(conn: &mut SqliteConnection, now_ms: i64, limit: i64) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::status.eq("pending"))
        .filter(outbox::next_attempt_ms.le(now_ms))
        .order(outbox::id)
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)
}

/// When the next pending row is due, if any.
pub fn next_due(conn: &mut SqliteConnection) -> QueryResult<Option<i64>> {
    outbox::table
        .filter(outbox::status.eq("pending"))
        .select(diesel::dsl::min(outbox::next_attempt_ms))
        .first(conn)
}

pub fn mark_sent(conn: &mut SqliteConnection, id: i64, now_ms: i64) -> QueryResult<()> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq("sent"),
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::done_ms.eq(now_ms),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_retry(
    conn: &mut SqliteConnection,
    id: i64,
    next_attempt_ms: i64,
    error: &str,
) -> QueryResult<()> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::next_attempt_ms.eq(next_attempt_ms),
            outbox::last_error.eq(error),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_failed(
    conn: &mut SqliteConnection,
    id: i64,
    now_ms: i64,
    error: &str,
) -> QueryResult<()> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq("failed"),
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(error),
            outbox::done_ms.eq(now_ms),
        ))
        .execute(conn)?;
    Ok(())
}

/// Makes every pending row due at `now_ms`: new mail settings deserve a try at once, not at
/// each row's next slot of backoff. Returns how many rows wait.
pub fn retry_all_now(conn: &mut SqliteConnection, now_ms: i64) -> QueryResult<usize> {
    diesel::update(
        outbox::table
            .filter(outbox::status.eq("pending"))
            .filter(outbox::next_attempt_ms.gt(now_ms)),
    )
    .set(outbox::next_attempt_ms.eq(now_ms))
    .execute(conn)?;
    outbox::table
        .filter(outbox::status.eq("pending"))
        .count()
        .get_result::<i64>(conn)
        .map(|n| n as usize)
}

/// Delivered or failed rows older than `before_ms`, kept until then for `monitord alerts`.
pub fn prune(conn: &mut SqliteConnection, before_ms: i64) -> QueryResult<usize> {
    diesel::delete(
        outbox::table
            .filter(outbox::status.ne("pending"))
            .filter(outbox::done_ms.lt(before_ms)),
    )
    .execute(conn)
}

/// Every outbox row not yet delivered, and the latest ones that were, newest first.
pub fn recent_outbox(conn: &mut SqliteConnection, limit: i64) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .order(outbox::id.desc())
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (testkit::util::TempDir, SqliteConnection) {
        let dir = testkit::util::temp_dir("alerts-store");
        let conn = crate::store::open_for_writing(&dir.path().join("db.sqlite3"))
            .expect("create and migrate a database");
        (dir, conn)
    }

    fn mail<'a>(id: &'a str, to: &'a str, at: i64) -> NewOutboxRow<'a> {
        NewOutboxRow {
            message_id: id,
            recipient: to,
            client: "web1",
            rule: "cpu",
            subject: "s",
            body: "b",
            created_ms: at,
            next_attempt_ms: at,
        }
    }

    #[test]
    fn states_round_trip_and_ok_is_no_row() {
        let (_dir, mut conn) = database();
        let firing = RuleState {
            phase: Phase::Firing,
            since_ms: 10,
            notified_ms: 20,
            value: 93.5,
        };
        save_state(&mut conn, "web1", "disk", &firing, Some("/var"), 30).unwrap();
        let rows = load_states(&mut conn).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state(), firing);
        assert_eq!(rows[0].detail.as_deref(), Some("/var"));
        save_state(&mut conn, "web1", "disk", &RuleState::OK, None, 40).unwrap();
        assert!(load_states(&mut conn).unwrap().is_empty());
    }

    #[test]
    fn outbox_rows_move_from_due_to_retry_sent_or_failed() {
        let (_dir, mut conn) = database();
        insert_outbox(
            &mut conn,
            &[mail("<a@h>", "x@h", 100), mail("<a@h>", "y@h", 100)],
        )
        .unwrap();
        insert_outbox(&mut conn, &[mail("<b@h>", "x@h", 200)]).unwrap();
        let due_ids = |conn: &mut SqliteConnection, now| -> Vec<i64> {
            due(conn, now, 10).unwrap().iter().map(|r| r.id).collect()
        };
        assert_eq!(due_ids(&mut conn, 150), [1, 2]);
        assert_eq!(due_ids(&mut conn, 200), [1, 2, 3]);

        mark_retry(&mut conn, 1, 5_000, "421 try later").unwrap();
        mark_sent(&mut conn, 2, 210).unwrap();
        mark_failed(&mut conn, 3, 220, "550 no such user").unwrap();
        assert_eq!(due_ids(&mut conn, 1_000), Vec::<i64>::new());
        assert_eq!(next_due(&mut conn).unwrap(), Some(5_000));
        let rows = recent_outbox(&mut conn, 10).unwrap();
        let by_id = |id| rows.iter().find(|r| r.id == id).unwrap();
        assert_eq!(
            (by_id(1).status.as_str(), by_id(1).attempts),
            ("pending", 1)
        );
        assert_eq!(by_id(1).last_error.as_deref(), Some("421 try later"));
        assert_eq!(by_id(2).status, "sent");
        assert_eq!(by_id(3).status, "failed");

        // Only finished rows older than the cut are pruned.
        assert_eq!(prune(&mut conn, 215).unwrap(), 1);
        assert_eq!(recent_outbox(&mut conn, 10).unwrap().len(), 2);
    }

    #[test]
    fn one_message_reaches_each_recipient_once() {
        let (_dir, mut conn) = database();
        let dup = insert_outbox(
            &mut conn,
            &[mail("<a@h>", "x@h", 1), mail("<a@h>", "x@h", 1)],
        );
        assert!(
            dup.is_err(),
            "the same (message, recipient) twice was accepted"
        );
    }
}
