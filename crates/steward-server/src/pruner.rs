//! The retention pruner: every `steward serve` and `steward worker` runs [`run`], which calls
//! [`pass`] at an interval; `steward retention prune` calls [`pass`] once.
//!
//! A pass, in an order that makes a dry run's counts the real pass's counts (nothing is
//! counted twice though a dry run deletes nothing):
//! 1. old audit entries, per their workspace's policy (entries outside any workspace, and of
//!    workspaces without a policy, keep the installation default);
//! 2. flows, connections, agents and workspaces soft-deleted more than [`PURGE_AFTER_DAYS`]
//!    days ago are purged (a workspace's flows, connections and agents go with it; an agent's
//!    chat threads go with the agent);
//! 3. for every other flow, with its own `retention:` block over its workspace's policy: run
//!    metadata (deleting runs), then error details, then payloads of the runs left;
//! 4. chat transcripts: the messages people wrote in the workspace's threads before its
//!    `transcript_days`, and the threads left without any (the runs that answered them follow
//!    the run categories above).
//!
//! Everything is done in small batches, one transaction each, yielding in between, so runs
//! are never held up for long. Each category or purge that removed something is recorded in
//! the audit log as a [`DeletionReceipt`] (`data.deleted`): tables and row counts, no data.
//! Passes are idempotent, so several servers may prune the same database.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use steward_engine::Timestamp;
use steward_executor::Clock;
use steward_flow::FlowRetention;
use steward_store::{
    AuditSweep, Category, DAY_MS, DeletionReceipt, Error, FlowSource, ObjectKind, PURGE_AFTER_DAYS,
    PurgeStep, Purgeable, Result, RetentionDays, RunSweep, ServerStore, TableCount, WorkspacePolicy,
};
use tokio::sync::watch;

/// Who the receipts name as the actor.
pub const ACTOR: &str = "system:retention";

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Count what would be removed, remove nothing.
    pub dry_run: bool,
    /// Only this workspace (and none of the audit entries outside any workspace).
    pub workspace: Option<String>,
    /// Runs per transaction.
    pub run_batch: usize,
    /// Audit entries per transaction.
    pub audit_batch: usize,
    /// How long to wait between batches, letting other writers in.
    pub pause: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self { dry_run: false, workspace: None, run_batch: 100, audit_batch: 500, pause: Duration::ZERO }
    }
}

/// What a pass removed (or would have) for one workspace and one category or object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// `None` for audit entries outside any workspace.
    pub workspace: Option<String>,
    /// `payloads`, `errors`, `metadata`, `audit`, `transcripts`, or `purge` of `object`.
    pub category: String,
    /// `flow <name>`, `connection <name>`, `agent <name>` or `workspace <id>` for purges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Runs deleted or rewritten (audit: entries removed; transcripts: none).
    pub runs: u64,
    /// Rows deleted or rewritten, all tables together.
    pub rows: u64,
    pub tables: Vec<TableCount>,
}

/// Everything one pass removed, in the order it did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    pub dry_run: bool,
    pub removals: Vec<Removal>,
}

/// Runs [`pass`] every `interval` (the first soon after start) until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn ServerStore>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let options = PruneOptions { pause: Duration::from_millis(10), ..PruneOptions::default() };
    let mut wait = interval.min(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        match pass(&*store, clock.now(), &options).await {
            Ok(report) if !report.removals.is_empty() => {
                tracing::info!(removals = report.removals.len(), "retention pass removed expired data");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention pass failed; trying again at the next interval"),
        }
        wait = interval;
    }
}

/// One pass at `now` (see the module documentation).
pub async fn pass(store: &dyn ServerStore, now: Timestamp, options: &PruneOptions) -> Result<PassReport> {
    let mut pass = Pass {
        store,
        now,
        options,
        report: PassReport { dry_run: options.dry_run, ..PassReport::default() },
        store_kind: String::new(),
    };
    pass.audit().await?;
    let purged = pass.purges().await?;
    pass.runs(&purged).await?;
    if !options.dry_run && !pass.report.removals.is_empty() {
        // The deletions are committed; a log the readers keep busy is flushed next time.
        if let Err(e) = store.flush_deleted().await {
            tracing::warn!(error = %e, "could not flush deleted data out of the database log");
        }
    }
    Ok(pass.report)
}

/// How long a flow's finished runs keep each category, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    pub payloads: i64,
    pub errors: i64,
    pub metadata: i64,
}

impl Periods {
    /// The workspace's days, each overridden by the flow's own `retention:` where it has one.
    pub fn of(days: &RetentionDays, flow: Option<&FlowRetention>) -> Self {
        let ms = |d: Option<steward_flow::Duration>, days: u32| {
            d.map_or(i64::from(days) * DAY_MS, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        };
        let f = flow.copied().unwrap_or_default();
        Self {
            payloads: ms(f.payloads, days.payload_days),
            errors: ms(f.errors, days.error_days),
            metadata: ms(f.metadata, days.metadata_days),
        }
    }

    /// The runs a category applies to: those that finished in `(after, until]`. Errors and
    /// payloads leave alone the runs metadata deletes.
    fn window(&self, category: Category, now: Timestamp) -> (Timestamp, Timestamp) {
        let before = |ms: i64| Timestamp(now.0.saturating_sub(ms));
        match category {
            Category::Metadata => (Timestamp(i64::MIN), before(self.metadata)),
            Category::Errors => (before(self.metadata), before(self.errors)),
            Category::Payloads => (before(self.metadata), before(self.payloads)),
        }
    }
}

/// The `retention:` block of a stored flow source; `None` when it has none or it cannot be
/// read (the workspace policy then applies, which is never longer than what the flow asked
/// for by mistake).
pub fn flow_retention(source: &str) -> Option<FlowRetention> {
    let doc = steward_flow::document_value(source).ok()?;
    serde_json::from_value(doc.get("retention")?.clone()).ok()
}

struct Pass<'a> {
    store: &'a dyn ServerStore,
    now: Timestamp,
    options: &'a PruneOptions,
    report: PassReport,
    /// The database kind receipts name (`sqlite`, `postgres`), as the audit sweep reported it.
    store_kind: String,
}

/// What a pass purges, so the run categories leave it alone.
#[derive(Default)]
struct Purged {
    workspaces: HashSet<String>,
    flows: HashSet<String>,
    /// Workspace and name: a dry run leaves their threads out of the transcript counts.
    agents: HashSet<(String, String)>,
}

impl Pass<'_> {
    fn wanted(&self, workspace: &str) -> bool {
        self.options.workspace.as_deref().is_none_or(|w| w == workspace)
    }

    async fn pause(&self) {
        if self.options.pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(self.options.pause).await;
        }
    }

    /// Records a removal, and (unless a dry run) its receipt in the audit log.
    async fn record(&mut self, removal: Removal, subject: String) -> Result<()> {
        if removal.rows == 0 {
            return Ok(());
        }
        if !self.options.dry_run {
            let reason = match &removal.object {
                Some(_) => format!("purged {PURGE_AFTER_DAYS} days after deletion"),
                None => "retention policy".to_owned(),
            };
            let receipt = DeletionReceipt { subject, reason, at: self.now, tables: removal.tables.clone() };
            self.store.append_audit(receipt.audit_event(removal.workspace.as_deref(), ACTOR)).await?;
        }
        self.report.removals.push(removal);
        Ok(())
    }

    async fn audit(&mut self) -> Result<()> {
        let mut removed: BTreeMap<Option<String>, u64> = BTreeMap::new();
        let mut after_seq = 0;
        let mut store: String;
        loop {
            let sweep = AuditSweep {
                now: self.now,
                default_days: RetentionDays::default().audit_days,
                workspace: self.options.workspace.as_deref(),
                after_seq,
                limit: self.options.audit_batch,
                dry_run: self.options.dry_run,
            };
            let swept = self.store.sweep_audit(&sweep).await?;
            store = swept.store;
            for (workspace, n) in swept.removed {
                *removed.entry(workspace).or_default() += n;
            }
            let Some(last) = swept.last_seq else { break };
            after_seq = last;
            self.pause().await;
        }
        self.store_kind.clone_from(&store);
        for (workspace, rows) in removed {
            let tables = vec![TableCount { store: store.clone(), table: "audit_log".into(), rows }];
            let removal =
                Removal { workspace, category: "audit".into(), object: None, runs: rows, rows, tables };
            self.record(removal, "retention:audit".into()).await?;
        }
        Ok(())
    }

    async fn purges(&mut self) -> Result<Purged> {
        let cutoff = Timestamp(self.now.0.saturating_sub(PURGE_AFTER_DAYS * DAY_MS));
        let due: Vec<Purgeable> =
            self.store.purgeable(cutoff).await?.into_iter().filter(|p| self.wanted(&p.workspace)).collect();
        let workspaces =
            due.iter().filter(|p| p.kind == ObjectKind::Workspace).map(|p| p.workspace.clone()).collect();
        let mut purged = Purged { workspaces, ..Purged::default() };
        for target in &due {
            // A workspace's purge takes its flows, connections and agents along.
            if target.kind != ObjectKind::Workspace && purged.workspaces.contains(&target.workspace) {
                continue;
            }
            match target.kind {
                ObjectKind::Flow => {
                    purged.flows.insert(target.id.clone());
                }
                ObjectKind::Agent => {
                    purged.agents.insert((target.workspace.clone(), target.name.clone()));
                }
                ObjectKind::Connection | ObjectKind::Workspace => {}
            }
            self.purge(target).await?;
        }
        Ok(purged)
    }

    async fn purge(&mut self, target: &Purgeable) -> Result<()> {
        let mut tables = Vec::new();
        loop {
            let step = PurgeStep { target, limit: self.options.run_batch, dry_run: self.options.dry_run };
            let swept = self.store.purge_step(&step).await?;
            tables.extend(swept.tables);
            if swept.done {
                break;
            }
            self.pause().await;
        }
        let kind = target.kind.as_str();
        let object = match target.kind {
            ObjectKind::Workspace => format!("{kind} {}", target.id),
            _ => format!("{kind} {}", target.name),
        };
        let removal = removal(Some(target.workspace.clone()), "purge", Some(object), merge(tables));
        self.record(removal, format!("{kind}:{}", target.id)).await
    }

    async fn runs(&mut self, purged: &Purged) -> Result<()> {
        for workspace in self.store.retention_workspaces().await? {
            if !self.wanted(&workspace) || purged.workspaces.contains(&workspace) {
                continue;
            }
            let policy = self.store.policy(&workspace).await?;
            let flows: Vec<FlowSource> = self.store.flow_sources(&workspace).await?;
            let flows: Vec<&FlowSource> =
                flows.iter().filter(|f| !purged.flows.contains(&f.flow_id)).collect();
            for category in Category::ALL {
                self.category(&policy, &flows, *category).await?;
            }
            self.transcripts(&policy, purged).await?;
        }
        Ok(())
    }

    /// The workspace's chat messages older than its `transcript_days`, and the threads they
    /// leave empty. A dry run counts them through the thread API instead.
    async fn transcripts(&mut self, policy: &WorkspacePolicy, purged: &Purged) -> Result<()> {
        let period = i64::from(policy.days.transcript_days) * DAY_MS;
        let before = Timestamp(self.now.0.saturating_sub(period));
        let workspace = &policy.workspace;
        let rows = if self.options.dry_run {
            self.old_messages(workspace, before, purged).await?
        } else {
            self.store.prune_transcripts(workspace, before).await?
        };
        let table =
            TableCount { store: self.store_kind.clone(), table: "agent_thread_messages".into(), rows };
        let removal = removal(Some(workspace.clone()), "transcripts", None, vec![table]);
        self.record(removal, "retention:transcripts".into()).await
    }

    /// How many of the workspace's messages were written before `before` (those of agents
    /// the pass purged are gone by now in a real pass).
    async fn old_messages(&self, workspace: &str, before: Timestamp, purged: &Purged) -> Result<u64> {
        let mut n = 0;
        for thread in self.store.list_threads(workspace, None).await? {
            if purged.agents.contains(&(thread.workspace.clone(), thread.agent.clone())) {
                continue;
            }
            match self.store.thread_messages(workspace, &thread.id).await {
                Ok(messages) => n += messages.iter().filter(|m| m.created_at < before).count() as u64,
                // Deleted since it was listed.
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// One category over every flow of a workspace; one receipt for all of them.
    async fn category(
        &mut self,
        policy: &WorkspacePolicy,
        flows: &[&FlowSource],
        category: Category,
    ) -> Result<()> {
        let mut tables = Vec::new();
        for flow in flows {
            let periods = Periods::of(&policy.days, flow_retention(&flow.source).as_ref());
            let (after, until) = periods.window(category, self.now);
            let mut cursor = None;
            loop {
                let sweep = RunSweep {
                    workspace: &policy.workspace,
                    flow: &flow.name,
                    category,
                    finished_after: after,
                    finished_until: until,
                    cursor: cursor.take(),
                    limit: self.options.run_batch,
                    dry_run: self.options.dry_run,
                    now: self.now,
                };
                let swept = self.store.sweep_runs(&sweep).await?;
                tables.extend(swept.tables);
                if swept.done {
                    break;
                }
                cursor = swept.cursor;
                self.pause().await;
            }
        }
        let removal = removal(Some(policy.workspace.clone()), category.as_str(), None, merge(tables));
        self.record(removal, format!("retention:{}", category.as_str())).await
    }
}

fn removal(
    workspace: Option<String>,
    category: &str,
    object: Option<String>,
    tables: Vec<TableCount>,
) -> Removal {
    let runs = tables.iter().filter(|t| t.table == "runs").map(|t| t.rows).sum();
    let rows = tables.iter().map(|t| t.rows).sum();
    Removal { workspace, category: category.to_owned(), object, runs, rows, tables }
}

/// Adds up the counts of the same table.
fn merge(tables: Vec<TableCount>) -> Vec<TableCount> {
    let mut out: Vec<TableCount> = Vec::new();
    for t in tables {
        match out.iter_mut().find(|o| o.table == t.table && o.store == t.store) {
            Some(o) => o.rows += t.rows,
            None => out.push(t),
        }
    }
    out
}

/// "entries 1–40 were pruned by retention on 2025-01-31", one line per stretch of the audit
/// chain that [`steward_store::verify_chain`] stepped over.
pub fn pruned_notes(report: &steward_store::ChainReport) -> Vec<String> {
    report
        .pruned
        .iter()
        .map(|r| {
            let date = chrono::DateTime::from_timestamp_millis(r.pruned_at.0)
                .map_or_else(|| r.pruned_at.0.to_string(), |d| d.format("%Y-%m-%d").to_string());
            format!("entries {}–{} were pruned by retention on {date}", r.first_seq, r.last_seq)
        })
        .collect()
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn a_flows_block_overrides_each_period_it_names() {
        let days = RetentionDays {
            payload_days: 30,
            error_days: 60,
            metadata_days: 90,
            audit_days: 365,
            transcript_days: 90,
        };
        let flow = flow_retention("name: f\nretention: { payloads: 12h }\nsteps: []\n");
        let p = Periods::of(&days, flow.as_ref());
        assert_eq!((p.payloads, p.errors, p.metadata), (DAY_MS / 2, 60 * DAY_MS, 90 * DAY_MS));
        assert_eq!(flow_retention("name: f\nsteps: []\n"), None);
        assert_eq!(
            flow_retention("name: f\nretention: { payloads: 7 }\nsteps: []\n"),
            None,
            "unreadable: policy"
        );
    }

    #[test]
    fn windows_leave_runs_metadata_deletes_to_it() {
        let p = Periods { payloads: 10, errors: 20, metadata: 30 };
        let now = Timestamp(1000);
        assert_eq!(p.window(Category::Metadata, now), (Timestamp(i64::MIN), Timestamp(970)));
        assert_eq!(p.window(Category::Errors, now), (Timestamp(970), Timestamp(980)));
        assert_eq!(p.window(Category::Payloads, now), (Timestamp(970), Timestamp(990)));
    }
}
