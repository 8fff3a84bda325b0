//! SQL and row mapping for workspace export and import, shared by both backends (the trait
//! implementation is in [`crate::shared`]).
//!
//! Each table is read in its key order a page at a time (keyset pagination: `key > last`),
//! so a read never skips or repeats rows however large the table is. Imports insert rows with
//! the ids they had; inserts that refer to another row check in SQL that it belongs to the
//! workspace being imported, so an export cannot write into another workspace's runs.

use serde_json::Value;
use steward_engine::Timestamp;
use steward_store::{Column, ColumnType, Error, Result, Row, Table};

use crate::rows::RowExt;

/// How a table's pages are ordered, which decides the cursor the next page starts after.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key {
    Text(&'static str),
    Int(&'static str),
    /// Two columns: text, then integer.
    TextInt(&'static str, &'static str),
    /// Two text columns.
    TextText(&'static str, &'static str),
}

/// Reading one table: `$1` the workspace, then the key of the last row read (one or two
/// values), then the page size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Read {
    pub page: &'static str,
    pub count: &'static str,
    pub key: Key,
}

macro_rules! page {
    ($select:literal, $from_where:expr, $key:literal) => {
        concat!(
            "SELECT ",
            $select,
            " FROM ",
            $from_where,
            " AND ",
            $key,
            " > $2 ORDER BY ",
            $key,
            " LIMIT $3"
        )
    };
}

macro_rules! count {
    ($from_where:expr) => {
        concat!("SELECT COUNT(*) AS n FROM ", $from_where)
    };
}

/// A table whose rows are all its exported columns, filtered by `workspace_id`.
macro_rules! plain {
    ($cols:literal, $table:literal, $key:literal, $kind:ident) => {
        Read {
            page: page!($cols, concat!($table, " WHERE workspace_id = $1"), $key),
            count: count!(concat!($table, " WHERE workspace_id = $1")),
            key: Key::$kind($key),
        }
    };
}

const WORKSPACES: Read = Read {
    page: page!("id, name, created_at, deleted_at", "workspaces WHERE id = $1", "id"),
    count: count!("workspaces WHERE id = $1"),
    key: Key::Text("id"),
};
const MEMBERS: Read = Read {
    page: page!(
        "m.workspace_id, m.user_id, u.email, m.role, m.created_at",
        "memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1",
        "m.user_id"
    ),
    count: count!("memberships WHERE workspace_id = $1"),
    key: Key::Text("user_id"),
};
const POLICIES: Read = plain!(
    "workspace_id, payload_days, error_days, metadata_days, audit_days, transcript_days, egress_hosts, \
     updated_at, updated_by",
    "workspace_policies",
    "workspace_id",
    Text
);
const FLOWS: Read =
    plain!("id, workspace_id, name, created_at, updated_at, disabled_at, deleted_at", "flows", "id", Text);
const FLOW_VERSIONS: Read = plain!(
    "id, workspace_id, flow_id, version, file_name, source, digest, concurrency, created_at",
    "flow_versions",
    "id",
    Text
);
const RUNS: Read = plain!(
    "id, workspace_id, flow_version_id, flow_name, status, inputs, output, error, parent_run_id, \
     parent_step_key, concurrency_key, concurrency_limit, created_at, updated_at, finished_at, wake_at, \
     lease_owner, lease_expires_at",
    "runs",
    "id",
    Text
);
const RUN_EVENTS: Read = Read {
    page: "SELECT e.run_id, e.seq, e.at, e.kind, e.step_key, e.data \
           FROM run_events e JOIN runs r ON r.id = e.run_id WHERE r.workspace_id = $1 \
           AND (e.run_id > $2 OR (e.run_id = $2 AND e.seq > $3)) ORDER BY e.run_id, e.seq LIMIT $4",
    count: count!("run_events e JOIN runs r ON r.id = e.run_id WHERE r.workspace_id = $1"),
    key: Key::TextInt("run_id", "seq"),
};
const RUN_SIGNALS: Read =
    plain!("id, run_id, workspace_id, data, created_at, consumed_at", "run_signals", "id", Int);
const WEBHOOKS: Read = plain!(
    "id, workspace_id, flow_name, scheme, mode, sync_timeout_ms, created_by, created_at, revoked_at",
    "webhooks",
    "id",
    Text
);
const SCHEDULES: Read = plain!(
    "id, workspace_id, flow_name, cron, timezone, catch_up, inputs, next_fire_at, created_by, created_at, \
     deleted_at",
    "schedules",
    "id",
    Text
);
const CONNECTIONS: Read = plain!(
    "id, workspace_id, name, kind, hosts, settings, created_by, created_at, updated_at, rotated_at, \
     revoked_at, deleted_at",
    "connections",
    "id",
    Text
);
const AGENT_VERSIONS: Read = plain!(
    "id, workspace_id, name, version, source, digest, created_at, deleted_at",
    "agent_versions",
    "id",
    Text
);
const AGENT_USAGE: Read = Read {
    page: "SELECT workspace_id, day, agent, input_tokens, output_tokens, cost_micros, model_calls, \
           tool_calls FROM agent_usage WHERE workspace_id = $1 AND (day > $2 OR (day = $2 AND agent > $3)) \
           ORDER BY day, agent LIMIT $4",
    count: count!("agent_usage WHERE workspace_id = $1"),
    key: Key::TextText("day", "agent"),
};
const AGENT_THREADS: Read =
    plain!("id, workspace_id, agent, title, created_at, updated_at", "agent_threads", "id", Text);
const AGENT_THREAD_MESSAGES: Read = Read {
    page: "SELECT thread_id, seq, workspace_id, content, run_id, created_at FROM agent_thread_messages \
           WHERE workspace_id = $1 AND (thread_id > $2 OR (thread_id = $2 AND seq > $3)) \
           ORDER BY thread_id, seq LIMIT $4",
    count: count!("agent_thread_messages WHERE workspace_id = $1"),
    key: Key::TextInt("thread_id", "seq"),
};
const AUDIT_LOG: Read = plain!(
    "seq, at, workspace_id, actor, action, object_type, object_id, source, details, prev_hash, hash",
    "audit_log",
    "seq",
    Int
);

pub(crate) fn read(table: Table) -> Read {
    match table {
        Table::Workspaces => WORKSPACES,
        Table::Policies => POLICIES,
        Table::Members => MEMBERS,
        Table::Flows => FLOWS,
        Table::FlowVersions => FLOW_VERSIONS,
        Table::Runs => RUNS,
        Table::RunEvents => RUN_EVENTS,
        Table::RunSignals => RUN_SIGNALS,
        Table::Webhooks => WEBHOOKS,
        Table::Schedules => SCHEDULES,
        Table::Connections => CONNECTIONS,
        Table::AgentVersions => AGENT_VERSIONS,
        Table::AgentUsage => AGENT_USAGE,
        Table::AgentThreads => AGENT_THREADS,
        Table::AgentThreadMessages => AGENT_THREAD_MESSAGES,
        Table::AuditLog => AUDIT_LOG,
    }
}

/// A value to bind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Text(Option<String>),
    Int(Option<i64>),
}

/// The key values the page after `after` starts behind; the lowest possible key for the
/// first page (every stored id is longer than `""`, every sequence number above 0).
pub(crate) fn cursor(table: Table, key: Key, after: Option<&Row>) -> Result<Vec<Val>> {
    let Some(row) = after else {
        return Ok(match key {
            Key::Text(_) => vec![Val::Text(Some(String::new()))],
            Key::Int(_) => vec![Val::Int(Some(i64::MIN))],
            Key::TextInt(..) => vec![Val::Text(Some(String::new())), Val::Int(Some(i64::MIN))],
            Key::TextText(..) => vec![Val::Text(Some(String::new())), Val::Text(Some(String::new()))],
        });
    };
    let text = |col| required(text(table, row, col)?, table, col).map(|s| Val::Text(Some(s)));
    let int = |col| required(int(table, row, col)?, table, col).map(|i| Val::Int(Some(i)));
    Ok(match key {
        Key::Text(c) => vec![text(c)?],
        Key::Int(c) => vec![int(c)?],
        Key::TextInt(a, b) => vec![text(a)?, int(b)?],
        Key::TextText(a, b) => vec![text(a)?, text(b)?],
    })
}

/// A result row as an export row: the table's columns in order.
pub(crate) fn export_row(row: &impl RowExt, columns: &[Column]) -> Result<Row> {
    let mut out = Row::new();
    for c in columns {
        let value = match c.kind {
            ColumnType::Text => row.opt_text(c.name)?.map(Value::String),
            ColumnType::Integer => row.opt_int(c.name)?.map(Value::from),
        };
        out.insert(c.name.to_owned(), value.unwrap_or(Value::Null));
    }
    Ok(out)
}

fn required<T>(value: Option<T>, table: Table, col: &str) -> Result<T> {
    value.ok_or_else(|| Error::Invalid(format!("a {} row has no `{col}`", table.name())))
}

/// A text column of an imported row (`null` is `None`).
pub(crate) fn text(table: Table, row: &Row, col: &str) -> Result<Option<String>> {
    match row.get(col) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Null) => Ok(None),
        Some(_) => Err(Error::Invalid(format!("{}.{col} must be a string or null", table.name()))),
        None => Err(missing(table, col)),
    }
}

/// An integer column of an imported row (`null` is `None`).
pub(crate) fn int(table: Table, row: &Row, col: &str) -> Result<Option<i64>> {
    match row.get(col) {
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::Invalid(format!("{}.{col} must be a 64-bit integer", table.name()))),
        Some(Value::Null) => Ok(None),
        Some(_) => Err(Error::Invalid(format!("{}.{col} must be an integer or null", table.name()))),
        None => Err(missing(table, col)),
    }
}

fn missing(table: Table, col: &str) -> Error {
    Error::Invalid(format!("a {} row lacks the column `{col}`", table.name()))
}

/// An imported row's values in the table's column order, after checking it has exactly the
/// table's columns.
pub(crate) fn values(table: Table, row: &Row) -> Result<Vec<Val>> {
    let columns = table.columns();
    if let Some(extra) = row.keys().find(|k| !columns.iter().any(|c| c.name == k.as_str())) {
        return Err(Error::Invalid(format!("a {} row has an unknown column `{extra}`", table.name())));
    }
    columns
        .iter()
        .map(|c| match c.kind {
            // Exports made before agents were soft-deleted have no deletion time.
            _ if table == Table::AgentVersions && c.name == "deleted_at" && !row.contains_key(c.name) => {
                Ok(Val::Int(None))
            }
            ColumnType::Text => text(table, row, c.name).map(Val::Text),
            ColumnType::Integer => int(table, row, c.name).map(Val::Int),
        })
        .collect()
}

/// The position of `col` in `table`'s columns.
pub(crate) fn position(table: Table, col: &str) -> usize {
    table.columns().iter().position(|c| c.name == col).unwrap_or_else(|| unreachable!("{col}"))
}

/// The value of an integer column, or `now` when it is null: the time an imported connection
/// or webhook is revoked.
pub(crate) fn revoke_at(vals: &mut [Val], table: Table, now: Timestamp) {
    let i = position(table, "revoked_at");
    if let Val::Int(None) = vals[i] {
        vals[i] = Val::Int(Some(now.0));
    }
}

// Writing an import. Placeholders follow the table's column order; where a row refers to
// another, the insert only happens when that row is in the workspace being imported (the
// last placeholder, or the row's own workspace_id), and 0 rows written means it was not.

pub(crate) const INSERT_WORKSPACE: &str =
    "INSERT INTO workspaces (id, name, created_at, deleted_at) VALUES ($1, $2, $3, $4)";
pub(crate) const USER_BY_ID: &str = "SELECT id FROM users WHERE id = $1";
pub(crate) const USER_BY_EMAIL: &str = "SELECT id FROM users WHERE email = $1";
pub(crate) const INSERT_MEMBER: &str =
    "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)";
pub(crate) const INSERT_FLOW: &str = "INSERT INTO flows \
     (id, workspace_id, name, created_at, updated_at, disabled_at, deleted_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const INSERT_FLOW_VERSION: &str = "INSERT INTO flow_versions \
     (id, workspace_id, flow_id, version, file_name, source, digest, concurrency, created_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
     WHERE EXISTS (SELECT 1 FROM flows WHERE id = $3 AND workspace_id = $2)";
/// Parents are set afterwards ([`SET_PARENT`]): a child's id may sort before its parent's.
pub(crate) const INSERT_RUN: &str = "INSERT INTO runs (id, workspace_id, flow_version_id, flow_name, status, \
     inputs, output, error, parent_run_id, parent_step_key, concurrency_key, concurrency_limit, created_at, \
     updated_at, finished_at, wake_at, lease_owner, lease_expires_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18 \
     WHERE EXISTS (SELECT 1 FROM flow_versions WHERE id = $3 AND workspace_id = $2)";
pub(crate) const SET_PARENT: &str = "UPDATE runs SET parent_run_id = $2 WHERE id = $1 AND workspace_id = $3 \
     AND EXISTS (SELECT 1 FROM runs p WHERE p.id = $2 AND p.workspace_id = $3)";
pub(crate) const INSERT_RUN_EVENT: &str = "INSERT INTO run_events (run_id, seq, at, kind, step_key, data) \
     SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND workspace_id = $7)";
/// Without the id: signals get new ids in the same order (ids are a sequence of the database).
pub(crate) const INSERT_RUN_SIGNAL: &str = "INSERT INTO run_signals \
     (run_id, workspace_id, data, created_at, consumed_at) SELECT $1, $2, $3, $4, $5 \
     WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND workspace_id = $2)";
/// `$10`: the digest of a fresh URL path nobody is told; no signing secret.
pub(crate) const INSERT_WEBHOOK: &str = "INSERT INTO webhooks (id, workspace_id, flow_name, scheme, mode, \
     sync_timeout_ms, created_by, created_at, revoked_at, path_digest, signing_secret) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)";
pub(crate) const INSERT_SCHEDULE: &str = "INSERT INTO schedules (id, workspace_id, flow_name, cron, \
     timezone, catch_up, inputs, next_fire_at, created_by, created_at, deleted_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const INSERT_POLICY: &str = "INSERT INTO workspace_policies (workspace_id, payload_days, \
     error_days, metadata_days, audit_days, transcript_days, egress_hosts, updated_at, updated_by) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// With an empty sealed value: the secret was not exported.
pub(crate) const INSERT_CONNECTION: &str = "INSERT INTO connections (id, workspace_id, name, kind, hosts, \
     settings, created_by, created_at, updated_at, rotated_at, revoked_at, deleted_at, sealed) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '')";
pub(crate) const INSERT_AGENT_VERSION: &str = "INSERT INTO agent_versions \
     (id, workspace_id, name, version, source, digest, created_at, deleted_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const INSERT_AGENT_USAGE: &str = "INSERT INTO agent_usage (workspace_id, day, agent, \
     input_tokens, output_tokens, cost_micros, model_calls, tool_calls) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const INSERT_AGENT_THREAD: &str = "INSERT INTO agent_threads \
     (id, workspace_id, agent, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const INSERT_AGENT_THREAD_MESSAGE: &str = "INSERT INTO agent_thread_messages \
     (thread_id, seq, workspace_id, content, run_id, created_at) SELECT $1, $2, $3, $4, $5, $6 \
     WHERE EXISTS (SELECT 1 FROM agent_threads WHERE id = $1 AND workspace_id = $3)";

// A person's own data.

pub(crate) const SESSIONS_OF: &str =
    "SELECT created_at, expires_at FROM sessions WHERE user_id = $1 ORDER BY created_at";
pub(crate) const TOKENS_OF: &str = "SELECT id, digest, workspace_id, user_id, name, permissions, created_at, \
     expires_at, last_used_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id";
/// `$1` the user's actor name, `$2` their id: what they did themselves or with their tokens.
pub(crate) const AUDIT_BY: &str = "SELECT seq, at, workspace_id, actor, action, object_type, object_id, \
     source, details, prev_hash, hash FROM audit_log WHERE seq > $3 \
     AND (actor = $1 OR actor IN (SELECT 'token:' || id FROM api_tokens WHERE user_id = $2)) \
     ORDER BY seq LIMIT $4";

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn imported_rows_need_exactly_the_tables_columns() {
        let ok = row(json!({ "id": "w", "name": "W", "created_at": 1, "deleted_at": null }));
        let vals = values(Table::Workspaces, &ok).unwrap();
        assert_eq!(vals[0], Val::Text(Some("w".into())));
        assert_eq!(vals[3], Val::Int(None));

        let extra = row(json!({ "id": "w", "name": "W", "created_at": 1, "deleted_at": null, "x": 1 }));
        let err = values(Table::Workspaces, &extra).unwrap_err().to_string();
        assert!(err.contains("unknown column `x`"), "{err}");

        let lacking = row(json!({ "id": "w", "name": "W", "created_at": 1 }));
        let err = values(Table::Workspaces, &lacking).unwrap_err().to_string();
        assert!(err.contains("lacks the column `deleted_at`"), "{err}");

        let wrong = row(json!({ "id": 5, "name": "W", "created_at": 1, "deleted_at": null }));
        let err = values(Table::Workspaces, &wrong).unwrap_err().to_string();
        assert!(err.contains("workspaces.id must be a string"), "{err}");
    }

    #[test]
    fn agent_versions_exported_before_soft_deletion_import_as_not_deleted() {
        let old = row(json!({
            "id": "a", "workspace_id": "w", "name": "n", "version": 1, "source": "s", "digest": "d",
            "created_at": 1
        }));
        let vals = values(Table::AgentVersions, &old).unwrap();
        assert_eq!(vals[position(Table::AgentVersions, "deleted_at")], Val::Int(None));
        let mut deleted = old.clone();
        deleted.insert("deleted_at".into(), json!(5));
        let vals = values(Table::AgentVersions, &deleted).unwrap();
        assert_eq!(vals[position(Table::AgentVersions, "deleted_at")], Val::Int(Some(5)));
    }

    #[test]
    fn every_table_reads_the_columns_it_exports() {
        for table in Table::ALL {
            let page = read(*table).page;
            for c in table.columns() {
                assert!(page.contains(c.name), "{}: {}", table.name(), c.name);
            }
            for secret in ["sealed", "signing_secret", "path_digest", "password_hash"] {
                assert!(!page.contains(secret), "{}: {secret}", table.name());
            }
        }
    }

    #[test]
    fn cursors_start_below_every_key_and_continue_after_the_last_row() {
        assert_eq!(
            cursor(Table::RunEvents, read(Table::RunEvents).key, None).unwrap(),
            vec![Val::Text(Some(String::new())), Val::Int(Some(i64::MIN))]
        );
        let last = row(json!({ "run_id": "r", "seq": 7 }));
        assert_eq!(
            cursor(Table::RunEvents, read(Table::RunEvents).key, Some(&last)).unwrap(),
            vec![Val::Text(Some("r".into())), Val::Int(Some(7))]
        );
    }
}
