//! Alert incidents: every firing → resolved episode, kept after the alert is over, so "what
//! happened last night" has an answer (the API's `/api/v1/alerts`, the dashboard). A row is
//! opened when a rule fires (with the value that fired it, the limit, and the client's top
//! processes at that moment), its `peak` follows the worst value while it fires, and it is
//! closed when the rule resolves — all in the transaction of the state change. Kept as long
//! as the coarsest history tier (pruned by the outbox sender's hourly pass).
//!
//! Not here: when a rule fires or resolves (see [`super::machine`], [`super::update`]).

use diesel::prelude::*;
use monitor_core::sample::TopProcess;

diesel::table! {
    incidents (id) {
        id -> BigInt,
        client -> Text,
        rule -> Text,
        fired_ms -> BigInt,
        resolved_ms -> Nullable<BigInt>,
        value -> Double,
        peak -> Double,
        limit_value -> Nullable<Double>,
        top -> Text,
    }
}

/// One incident as the API lists it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = incidents)]
pub struct Incident {
    #[serde(skip)]
    pub id: i64,
    pub client: String,
    pub rule: String,
    pub fired_ms: i64,
    pub resolved_ms: Option<i64>,
    pub value: f64,
    pub peak: f64,
    #[serde(rename = "limit")]
    pub limit_value: Option<f64>,
    /// JSON as the agent sent it.
    #[serde(skip)]
    pub top: String,
}

impl Incident {
    /// The top processes when it fired.
    pub fn top(&self) -> Vec<TopProcess> {
        serde_json::from_str(&self.top).unwrap_or_default()
    }
}

/// What a firing rule opens.
#[derive(Debug, Clone, Copy)]
pub struct Fired<'a> {
    pub client: &'a str,
    pub rule: &'a str,
    pub now_ms: i64,
    pub value: f64,
    pub limit: Option<f64>,
    pub top: &'a [TopProcess],
}

/// Opens an incident (closing a stale open one of the same rule first: the unique index
/// allows one open incident per client and rule).
pub fn fired(conn: &mut SqliteConnection, f: &Fired<'_>) -> QueryResult<()> {
    resolved(conn, f.client, f.rule, f.now_ms)?;
    let top = serde_json::to_string(f.top).unwrap_or_else(|_| "[]".into());
    diesel::insert_into(incidents::table)
        .values((
            incidents::client.eq(f.client),
            incidents::rule.eq(f.rule),
            incidents::fired_ms.eq(f.now_ms),
            incidents::value.eq(f.value),
            incidents::peak.eq(f.value),
            incidents::limit_value.eq(f.limit),
            incidents::top.eq(top),
        ))
        .execute(conn)?;
    Ok(())
}

/// Raises (or, for a rule that fires below its limit, lowers) the open incident's peak to
/// `value` when `value` is worse; writes nothing otherwise.
pub fn worse(
    conn: &mut SqliteConnection,
    client: &str,
    rule: &str,
    value: f64,
    below: bool,
) -> QueryResult<()> {
    let open = incidents::table
        .filter(incidents::client.eq(client))
        .filter(incidents::rule.eq(rule))
        .filter(incidents::resolved_ms.is_null());
    if below {
        diesel::update(open.filter(incidents::peak.gt(value)))
            .set(incidents::peak.eq(value))
            .execute(conn)?;
    } else {
        diesel::update(open.filter(incidents::peak.lt(value)))
            .set(incidents::peak.eq(value))
            .execute(conn)?;
    }
    Ok(())
}

/// Closes the open incident of (client, rule), if any.
pub fn resolved(
    conn: &mut SqliteConnection,
    client: &str,
    rule: &str,
    now_ms: i64,
) -> QueryResult<()> {
    diesel::update(
        incidents::table
            .filter(incidents::client.eq(client))
            .filter(incidents::rule.eq(rule))
            .filter(incidents::resolved_ms.is_null()),
    )
    .set(incidents::resolved_ms.eq(now_ms))
    .execute(conn)?;
    Ok(())
}

/// Incidents open now or resolved at or after `since_ms`, newest first, at most `limit`.
pub fn since(conn: &mut SqliteConnection, since_ms: i64, limit: i64) -> QueryResult<Vec<Incident>> {
    incidents::table
        .filter(
            incidents::resolved_ms
                .is_null()
                .or(incidents::resolved_ms.ge(since_ms)),
        )
        .order(incidents::fired_ms.desc())
        .limit(limit)
        .select(Incident::as_select())
        .load(conn)
}

/// Drops incidents resolved before `before_ms`.
pub fn prune(conn: &mut SqliteConnection, before_ms: i64) -> QueryResult<usize> {
    diesel::delete(incidents::table.filter(incidents::resolved_ms.lt(before_ms))).execute(conn)
}
