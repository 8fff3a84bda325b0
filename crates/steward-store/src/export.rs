//! Workspace export and import, and a person's own data.
//!
//! An export is a set of tables, each a sequence of rows (JSON objects whose keys are the
//! table's [`Column`]s, in order). The tables are those of the database with what must not
//! leave it removed: connections lose their sealed secret values, webhooks their signing
//! secrets and URL digests, members carry only id, e-mail and role; tokens, sessions,
//! invitations and the wrapped data keys are not exported at all. Columns holding JSON are
//! strings with the JSON text exactly as stored, so values come back byte for byte.
//!
//! Reading is a page at a time in each table's key order ([`ExportStore::export_page`], or
//! [`Pages`]), so an export of any size never holds a table in memory. Importing takes the
//! rows from an [`ImportRows`] source, in [`Table::ALL`] order, and writes them in one
//! transaction: a failed import leaves nothing behind.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value, json};
use steward_engine::Timestamp;

use crate::{AccountStore, ApiToken, AuditEvent, Result};

/// The format version written in every export's header; imports refuse any other.
pub const FORMAT: &str = "steward-export-v1";

/// The format version of a person's own data.
pub const PERSONAL_FORMAT: &str = "steward-personal-export-v1";

/// Rows per page when reading an export.
pub const PAGE: usize = 500;

/// One exported row: column name to value (a string, an integer or `null`).
pub type Row = Map<String, Value>;

/// What a column holds; every value may also be `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    /// A 64-bit integer (times are milliseconds since the Unix epoch).
    Integer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
}

const fn t(name: &'static str) -> Column {
    Column { name, kind: ColumnType::Text }
}

const fn i(name: &'static str) -> Column {
    Column { name, kind: ColumnType::Integer }
}

/// The exported tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Workspaces,
    /// The workspace's retention and egress policy (`workspace_policies`), when one was set.
    Policies,
    Members,
    Flows,
    FlowVersions,
    Runs,
    RunEvents,
    RunSignals,
    Webhooks,
    Schedules,
    Connections,
    /// Every version of every agent definition.
    AgentVersions,
    /// Agents' usage counters per day.
    AgentUsage,
    /// Chat threads and the messages people wrote in them.
    AgentThreads,
    AgentThreadMessages,
    AuditLog,
}

impl Table {
    /// Every table, in the order rows are written and loaded (a row's references come first).
    pub const ALL: &[Table] = &[
        Table::Workspaces,
        Table::Policies,
        Table::Members,
        Table::Flows,
        Table::FlowVersions,
        Table::Runs,
        Table::RunEvents,
        Table::RunSignals,
        Table::Webhooks,
        Table::Schedules,
        Table::Connections,
        Table::AgentVersions,
        Table::AgentUsage,
        Table::AgentThreads,
        Table::AgentThreadMessages,
        Table::AuditLog,
    ];

    /// The name in file names and in the stream: `flow_versions`.
    pub fn name(self) -> &'static str {
        match self {
            Table::Workspaces => "workspaces",
            Table::Policies => "workspace_policies",
            Table::Members => "members",
            Table::Flows => "flows",
            Table::FlowVersions => "flow_versions",
            Table::Runs => "runs",
            Table::RunEvents => "run_events",
            Table::RunSignals => "run_signals",
            Table::Webhooks => "webhooks",
            Table::Schedules => "schedules",
            Table::Connections => "connections",
            Table::AgentVersions => "agent_versions",
            Table::AgentUsage => "agent_usage",
            Table::AgentThreads => "agent_threads",
            Table::AgentThreadMessages => "agent_thread_messages",
            Table::AuditLog => "audit_log",
        }
    }

    pub fn parse(name: &str) -> Option<Table> {
        Table::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// The exported columns, in order. Secret columns are absent on purpose.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Workspaces => WORKSPACES_COLUMNS,
            Table::Policies => POLICIES_COLUMNS,
            Table::Members => MEMBERS_COLUMNS,
            Table::Flows => FLOWS_COLUMNS,
            Table::FlowVersions => FLOW_VERSIONS_COLUMNS,
            Table::Runs => RUN_COLUMNS,
            Table::RunEvents => RUN_EVENTS_COLUMNS,
            Table::RunSignals => RUN_SIGNALS_COLUMNS,
            Table::Webhooks => WEBHOOKS_COLUMNS,
            Table::Schedules => SCHEDULES_COLUMNS,
            Table::Connections => CONNECTIONS_COLUMNS,
            Table::AgentVersions => AGENT_VERSIONS_COLUMNS,
            Table::AgentUsage => AGENT_USAGE_COLUMNS,
            Table::AgentThreads => AGENT_THREADS_COLUMNS,
            Table::AgentThreadMessages => AGENT_THREAD_MESSAGES_COLUMNS,
            Table::AuditLog => AUDIT_LOG_COLUMNS,
        }
    }
}

const WORKSPACES_COLUMNS: &[Column] = &[t("id"), t("name"), i("created_at"), i("deleted_at")];
const POLICIES_COLUMNS: &[Column] = &[
    t("workspace_id"),
    i("payload_days"),
    i("error_days"),
    i("metadata_days"),
    i("audit_days"),
    i("transcript_days"),
    t("egress_hosts"),
    i("updated_at"),
    t("updated_by"),
];
const MEMBERS_COLUMNS: &[Column] = &[t("workspace_id"), t("user_id"), t("email"), t("role"), i("created_at")];
const FLOWS_COLUMNS: &[Column] = &[
    t("id"),
    t("workspace_id"),
    t("name"),
    i("created_at"),
    i("updated_at"),
    i("disabled_at"),
    i("deleted_at"),
];
const FLOW_VERSIONS_COLUMNS: &[Column] = &[
    t("id"),
    t("workspace_id"),
    t("flow_id"),
    i("version"),
    t("file_name"),
    t("source"),
    t("digest"),
    i("concurrency"),
    i("created_at"),
];
const RUN_EVENTS_COLUMNS: &[Column] = &[t("run_id"), i("seq"), i("at"), t("kind"), t("step_key"), t("data")];
const RUN_SIGNALS_COLUMNS: &[Column] =
    &[i("id"), t("run_id"), t("workspace_id"), t("data"), i("created_at"), i("consumed_at")];
const WEBHOOKS_COLUMNS: &[Column] = &[
    t("id"),
    t("workspace_id"),
    t("flow_name"),
    t("scheme"),
    t("mode"),
    i("sync_timeout_ms"),
    t("created_by"),
    i("created_at"),
    i("revoked_at"),
];
const SCHEDULES_COLUMNS: &[Column] = &[
    t("id"),
    t("workspace_id"),
    t("flow_name"),
    t("cron"),
    t("timezone"),
    t("catch_up"),
    t("inputs"),
    i("next_fire_at"),
    t("created_by"),
    i("created_at"),
    i("deleted_at"),
];
const CONNECTIONS_COLUMNS: &[Column] = &[
    t("id"),
    t("workspace_id"),
    t("name"),
    t("kind"),
    t("hosts"),
    t("settings"),
    t("created_by"),
    i("created_at"),
    i("updated_at"),
    i("rotated_at"),
    i("revoked_at"),
    i("deleted_at"),
];
const AGENT_VERSIONS_COLUMNS: &[Column] = &[
    t("id"),
    t("workspace_id"),
    t("name"),
    i("version"),
    t("source"),
    t("digest"),
    i("created_at"),
    i("deleted_at"),
];
const AGENT_USAGE_COLUMNS: &[Column] = &[
    t("workspace_id"),
    t("day"),
    t("agent"),
    i("input_tokens"),
    i("output_tokens"),
    i("cost_micros"),
    i("model_calls"),
    i("tool_calls"),
];
const AGENT_THREADS_COLUMNS: &[Column] =
    &[t("id"), t("workspace_id"), t("agent"), t("title"), i("created_at"), i("updated_at")];
const AGENT_THREAD_MESSAGES_COLUMNS: &[Column] =
    &[t("thread_id"), i("seq"), t("workspace_id"), t("content"), t("run_id"), i("created_at")];
const AUDIT_LOG_COLUMNS: &[Column] = &[
    i("seq"),
    i("at"),
    t("workspace_id"),
    t("actor"),
    t("action"),
    t("object_type"),
    t("object_id"),
    t("source"),
    t("details"),
    t("prev_hash"),
    t("hash"),
];
const RUN_COLUMNS: &[Column] = &[
    t("id"),
    t("workspace_id"),
    t("flow_version_id"),
    t("flow_name"),
    t("status"),
    t("inputs"),
    t("output"),
    t("error"),
    t("parent_run_id"),
    t("parent_step_key"),
    t("concurrency_key"),
    i("concurrency_limit"),
    i("created_at"),
    i("updated_at"),
    i("finished_at"),
    i("wake_at"),
    t("lease_owner"),
    i("lease_expires_at"),
];

/// Rows per table, by table name.
pub type Counts = BTreeMap<String, u64>;

/// What an import is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// The workspace id to create; every row is moved into it. It must not exist.
    pub workspace: String,
    /// Who imports, for the audit log (`system:cli`).
    pub actor: String,
    pub now: Timestamp,
    /// Facts about the export (its format, source workspace, time and counts) for the
    /// `workspace.imported` audit entry.
    pub details: Value,
}

/// What an import did, and what the operator must do next.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// Rows written per table.
    pub imported: Counts,
    /// E-mail addresses of members without an account here (by id or e-mail): skipped.
    pub skipped_members: Vec<String>,
    /// Connections (not deleted) that came back revoked, without a secret: rotate them.
    pub connections_to_rotate: Vec<String>,
    /// Webhooks that came back revoked (their URLs and signing secrets are not exported).
    pub revoked_webhooks: Vec<String>,
}

/// Where an import reads rows from: tables in [`Table::ALL`] order, each row with the
/// table's columns.
#[async_trait]
pub trait ImportRows: Send {
    /// The next row, or `None` after the last.
    async fn next_row(&mut self) -> Result<Option<(Table, Row)>>;
}

/// A session, without the digest and the CSRF token that make it usable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Reading a workspace out and writing one in; reading what is held about one person.
#[async_trait]
pub trait ExportStore: Send + Sync {
    /// Up to `limit` rows of `table` in `workspace`, in the table's key order, after the row
    /// `after` (a row this method returned; `None` for the first page).
    async fn export_page(
        &self,
        workspace: &str,
        table: Table,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>>;

    /// How many rows each table of `workspace` has now.
    async fn export_counts(&self, workspace: &str) -> Result<Counts>;

    /// Creates `import.workspace` from `rows` in one transaction, ids kept. `Conflict` when
    /// the workspace (or a row with the same id) exists; `Invalid` for rows out of order or
    /// of the wrong shape. Connections come back revoked without a secret, webhooks revoked;
    /// audit entries are appended to this database's chain as new entries that carry the
    /// original's time, sequence number and hash in their details, followed by one
    /// `workspace.imported` entry.
    async fn import_workspace(&self, import: &Import, rows: &mut dyn ImportRows) -> Result<ImportReport>;

    /// Every session of `user`, expired or not.
    async fn sessions_of(&self, user: &str) -> Result<Vec<SessionInfo>>;

    /// Every API token of `user`, in every workspace, revoked or not.
    async fn tokens_of(&self, user: &str) -> Result<Vec<ApiToken>>;

    /// Audit entries whose actor is `user` or one of their tokens, after `after_seq`, oldest
    /// first.
    async fn audit_by(&self, user: &str, after_seq: i64, limit: usize) -> Result<Vec<AuditEvent>>;
}

/// The pages of one table, read one after another.
pub struct Pages<'a, S: ?Sized> {
    store: &'a S,
    workspace: &'a str,
    table: Table,
    last: Option<Row>,
    done: bool,
}

impl<S: ?Sized> std::fmt::Debug for Pages<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").field("table", &self.table).field("done", &self.done).finish()
    }
}

impl<'a, S: ExportStore + ?Sized> Pages<'a, S> {
    pub fn new(store: &'a S, workspace: &'a str, table: Table) -> Self {
        Self { store, workspace, table, last: None, done: false }
    }

    /// The next page, or `None` when the table has no more rows.
    pub async fn next(&mut self) -> Result<Option<Vec<Row>>> {
        if self.done {
            return Ok(None);
        }
        let page = self.store.export_page(self.workspace, self.table, self.last.as_ref(), PAGE).await?;
        self.done = page.len() < PAGE;
        match page.last() {
            Some(last) => self.last = Some(last.clone()),
            None => return Ok(None),
        }
        Ok(Some(page))
    }
}

/// Everything held about `user` that is theirs to see: the account (no password hash),
/// memberships, sessions and tokens (no secrets or digests) and the audit entries they
/// caused. Other people appear only where an entry of theirs names them.
pub async fn personal_data<S>(store: &S, user: &str, now: Timestamp) -> Result<Value>
where
    S: AccountStore + ExportStore + ?Sized,
{
    let account = store.user(user).await?;
    let memberships: Vec<Value> = store
        .workspaces_of(user)
        .await?
        .into_iter()
        .map(|(w, role)| json!({ "workspace": w.id, "name": w.name, "role": role }))
        .collect();
    let mut audit = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_by(user, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        audit.extend(page);
    }
    Ok(json!({
        "format": PERSONAL_FORMAT,
        "exported_at": now.0,
        "account": account,
        "memberships": memberships,
        "sessions": store.sessions_of(user).await?,
        "tokens": store.tokens_of(user).await?,
        "audit": audit,
    }))
}
