//! Retention: policies, sweeps of finished runs by category, purges of soft-deleted objects
//! and the removal of old audit entries, with a fixed clock.

use serde_json::json;
use steward_engine::{ErrorKind, Event, RunStatus, StepError};
use steward_store::{
    ApiToken, AuditSweep, Category, Connection, DAY_MS, Error, FlowVersion, NewAuditEvent, ObjectKind,
    PolicySettings, PurgeStep, Purgeable, RunSweep, RunUpdate, ServerStore, Signal, Swept, TableCount,
    WorkspaceKey,
};

use crate::support::{OTHER, T0, TestDb, WS, append, at, entries, new_run, save, started};

/// A run of `v` that finished (failed) at `finished`, holding `payload-<id>` in its inputs,
/// outputs, signal and messages and `error-<id>` in its error messages; optionally a child of
/// `parent`. Returns its id.
async fn finished_run(s: &dyn ServerStore, v: &FlowVersion, finished: i64, parent: Option<&str>) -> String {
    let mut run = new_run(v, finished - 100);
    let id = run.id.clone();
    let payload = format!("payload-{id}");
    let error = StepError::http(503, format!("error-{id}"));
    run.inputs = json!({ "secret": payload });
    run.parent = parent.map(|p| (p.to_owned(), "call".to_owned()));
    run.leased_to = Some(("me".into(), at(finished + 60_000)));
    let events = [
        started(&run),
        Event::StepSucceeded { key: "a".into(), output: json!([payload, 1]) },
        Event::StepRetrying { key: "b".into(), attempt: 1, error: error.clone(), retry_at: at(finished) },
        Event::StepSuspended { key: "c".into(), message: Some(payload.clone()), timeout_at: None },
    ];
    s.create_run(run, &events).await.unwrap();
    let signal = Signal::ChildFinished {
        step: "d".into(),
        child_run_id: "x".into(),
        output: Some(json!(payload)),
        error: Some(error.clone()),
    };
    s.signal(&v.workspace, &id, &signal, at(finished - 50)).await.unwrap();
    let output = json!({ "out": payload });
    let last = [Event::RunFinished {
        status: RunStatus::Failed,
        output: Some(output.clone()),
        error: Some(error.clone()),
    }];
    let update = RunUpdate {
        status: Some(RunStatus::Failed),
        output: Some(output),
        error: Some(error),
        finished_at: Some(at(finished)),
        ..RunUpdate::default()
    };
    s.append(append(&id, "me", 4, &entries(5, finished, &last), update, finished)).await.unwrap();
    id
}

/// One category over `flow`'s runs that ended at or before `until` (and, for errors and
/// payloads, after `metadata_until`), batch after batch; returns the counts added up.
async fn sweep(
    s: &dyn ServerStore,
    flow: &str,
    category: Category,
    window: (i64, i64),
    dry_run: bool,
    limit: usize,
) -> (Vec<(String, u64)>, usize) {
    let mut cursor = None;
    let mut totals: Vec<(String, u64)> = Vec::new();
    let mut batches = 0;
    loop {
        let request = RunSweep {
            workspace: WS,
            flow,
            category,
            finished_after: at(window.0),
            finished_until: at(window.1),
            cursor: cursor.take(),
            limit,
            dry_run,
            now: at(window.1 + 1),
        };
        let Swept { tables, cursor: next, done } = s.sweep_runs(&request).await.unwrap();
        batches += 1;
        add(&mut totals, &tables);
        if done {
            return (totals, batches);
        }
        cursor = next;
    }
}

fn add(totals: &mut Vec<(String, u64)>, tables: &[TableCount]) {
    for t in tables {
        match totals.iter_mut().find(|(name, _)| *name == t.table) {
            Some((_, n)) => *n += t.rows,
            None => totals.push((t.table.clone(), t.rows)),
        }
    }
}

fn rows(totals: &[(String, u64)], table: &str) -> u64 {
    totals.iter().find(|(t, _)| t == table).map_or(0, |(_, n)| *n)
}

const DAYS_90: i64 = 90 * DAY_MS;

pub async fn policies_default_validate_and_update(db: &TestDb) {
    let s = &*db.store;
    let p = s.policy(WS).await.unwrap();
    assert_eq!(
        (p.days.payload_days, p.days.error_days, p.days.metadata_days, p.days.audit_days),
        (90, 180, 365, 365)
    );
    assert_eq!((p.updated_at, p.settings.egress_hosts), (None, None));

    let set = PolicySettings {
        payload_days: Some(7),
        error_days: Some(14),
        metadata_days: Some(30),
        egress_hosts: Some(vec!["api.github.com".into(), "*.example.com".into()]),
        ..PolicySettings::default()
    };
    let stored = s.set_policy(WS, &set, "user:ada", at(T0)).await.unwrap();
    assert_eq!(stored.settings, set);
    assert_eq!((stored.days.payload_days, stored.days.error_days, stored.days.metadata_days), (7, 14, 30));
    assert_eq!((stored.updated_at, stored.updated_by.as_deref()), (Some(at(T0)), Some("user:ada")));
    assert_eq!(s.policy(WS).await.unwrap(), stored);
    assert_eq!(s.policy(OTHER).await.unwrap().days.payload_days, 90, "per workspace");

    // The effective payload and error days (90, 180: the defaults) outlive metadata (30): refused.
    let bad = PolicySettings { metadata_days: Some(30), ..PolicySettings::default() };
    let err = s.set_policy(WS, &bad, "user:ada", at(T0 + 1)).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid(m) if m.contains("longer than metadata_days (30)")), "{err:?}");
    let zero = PolicySettings { audit_days: Some(0), ..PolicySettings::default() };
    assert!(matches!(s.set_policy(WS, &zero, "user:ada", at(T0 + 1)).await, Err(Error::Invalid(_))));
    assert_eq!(s.policy(WS).await.unwrap(), stored, "refused changes change nothing");

    let back = s.set_policy(WS, &PolicySettings::default(), "user:bob", at(T0 + 2)).await.unwrap();
    assert_eq!((back.days.payload_days, back.settings.egress_hosts), (90, None));

    // Transcripts: 90 days unless set; unrelated to how long runs are kept.
    assert_eq!(back.days.transcript_days, 90);
    let transcripts = PolicySettings { transcript_days: Some(400), ..PolicySettings::default() };
    let stored = s.set_policy(WS, &transcripts, "user:ada", at(T0 + 3)).await.unwrap();
    assert_eq!((stored.settings.transcript_days, stored.days.transcript_days), (Some(400), 400));
    assert_eq!(s.policy(WS).await.unwrap(), stored);
    let zero = PolicySettings { transcript_days: Some(0), ..PolicySettings::default() };
    let err = s.set_policy(WS, &zero, "user:ada", at(T0 + 4)).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid(m) if m.contains("transcript_days is 0")), "{err:?}");
}

/// Each category applies at its cutoff and not a millisecond before; each run is rewritten
/// once; deleting a run takes its journal and signals and unlinks its children.
pub async fn sweeps_apply_each_category_on_time(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "f", "d1", T0).await;
    let finished = T0 + 1000;
    let parent = finished_run(s, &v, finished, None).await;
    let child = finished_run(s, &v, finished + DAYS_90, Some(&parent)).await;
    let payload = format!("payload-{parent}");
    let error = format!("error-{parent}");
    let metadata_cutoff = finished - 365 * DAY_MS;

    // Payloads: nothing at 90 days minus 1 ms, everything at 90 days.
    let cutoff = finished - 1;
    let (t, _) = sweep(s, "f", Category::Payloads, (metadata_cutoff - DAYS_90, cutoff), false, 10).await;
    assert!(t.is_empty(), "{t:?}");
    assert!(db.scan(&payload).await.contains(&"run_events".to_owned()));
    let (t, _) = sweep(s, "f", Category::Payloads, (metadata_cutoff, finished), false, 10).await;
    assert_eq!((rows(&t, "runs"), rows(&t, "run_events"), rows(&t, "run_signals")), (1, 4, 1), "{t:?}");
    assert!(db.scan(&payload).await.is_empty(), "payload left in {:?}", db.scan(&payload).await);
    assert_eq!(db.scan(&error).await, ["run_events", "run_signals", "runs"], "errors are kept");
    let journal = s.journal(&parent).await.unwrap();
    let Event::StepSucceeded { output, .. } = &journal[1].event else { panic!("{journal:?}") };
    assert_eq!(output["retained"], "metadata");
    let (again, _) = sweep(s, "f", Category::Payloads, (metadata_cutoff, finished), false, 10).await;
    assert!(again.is_empty(), "a run's payloads are stripped once: {again:?}");

    // Error details: the kind and status stay.
    let (t, _) = sweep(s, "f", Category::Errors, (metadata_cutoff, finished - 1), false, 10).await;
    assert!(t.is_empty());
    let (t, _) = sweep(s, "f", Category::Errors, (metadata_cutoff, finished), false, 10).await;
    assert_eq!((rows(&t, "runs"), rows(&t, "run_events"), rows(&t, "run_signals")), (1, 2, 1), "{t:?}");
    assert!(db.scan(&error).await.is_empty());
    let rec = s.run(WS, &parent).await.unwrap();
    let e = rec.error.unwrap();
    assert_eq!((e.kind, e.status), (ErrorKind::Http, Some(503)));
    assert!(
        db.scan(&format!("error-{child}")).await.contains(&"runs".to_owned()),
        "the later run keeps its own"
    );

    // Metadata: the run, its journal and signals go; its child stays, unlinked.
    let (t, _) = sweep(s, "f", Category::Metadata, (i64::MIN, finished - 1), false, 10).await;
    assert!(t.is_empty());
    let (t, _) = sweep(s, "f", Category::Metadata, (i64::MIN, finished), false, 10).await;
    assert_eq!((rows(&t, "runs"), rows(&t, "run_events"), rows(&t, "run_signals")), (1, 5, 1), "{t:?}");
    assert!(matches!(s.run(WS, &parent).await, Err(Error::NotFound(_))));
    assert!(db.scan(&parent).await.is_empty(), "{:?}", db.scan(&parent).await);
    let child = s.run(WS, &child).await.unwrap();
    assert_eq!(child.parent_run_id, None);
}

/// A dry run reports exactly what the real sweep then does, and changes nothing.
pub async fn dry_runs_count_what_the_real_sweep_does_and_change_nothing(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "f", "d1", T0).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(finished_run(s, &v, T0 + i, None).await);
    }
    let before: Vec<_> = futures_journals(s, &ids).await;
    for category in [Category::Payloads, Category::Errors, Category::Metadata] {
        let window = (i64::MIN, T0 + 3);
        let (dry, dry_batches) = sweep(s, "f", category, window, true, 2).await;
        assert_eq!(futures_journals(s, &ids).await, before, "{category:?} dry run changed nothing");
        assert_eq!(rows(&dry, "runs"), 4, "{category:?}: {dry:?}");
        assert_eq!(dry_batches, 3, "a dry run goes batch by batch too");
        if category == Category::Metadata {
            let (real, _) = sweep(s, "f", category, window, false, 2).await;
            assert_eq!(real, dry);
        }
    }
    let (real, _) = sweep(s, "f", Category::Payloads, (i64::MIN, T0 + 4), false, 2).await;
    assert_eq!(rows(&real, "runs"), 1, "only the run metadata did not delete is left");
}

async fn futures_journals(s: &dyn ServerStore, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let journal = s.journal(id).await.unwrap();
        let run = s.run(WS, id).await.map(|r| format!("{:?}", (r.output, r.error))).unwrap_or_default();
        out.push(format!("{journal:?} {run}"));
    }
    out
}

/// More runs than a batch: the batches go on until every expired run is done.
pub async fn batches_go_on_until_everything_expired_is_done(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "f", "d1", T0).await;
    for i in 0..7 {
        finished_run(s, &v, T0 + i, None).await;
    }
    let kept = finished_run(s, &v, T0 + 100, None).await;
    let (t, batches) = sweep(s, "f", Category::Metadata, (i64::MIN, T0 + 10), false, 3).await;
    assert_eq!((rows(&t, "runs"), batches), (7, 3), "{t:?}");
    let left = s.list_runs(WS, &steward_store::RunFilter::default()).await.unwrap();
    assert_eq!(left.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), [kept]);
}

/// Purges everything of `target`, batch by batch (or at once in a dry run).
async fn purge(s: &dyn ServerStore, target: &Purgeable, dry_run: bool) -> Vec<(String, u64)> {
    let mut totals = Vec::new();
    loop {
        let swept = s.purge_step(&PurgeStep { target, limit: 2, dry_run }).await.unwrap();
        add(&mut totals, &swept.tables);
        if swept.done {
            return totals;
        }
    }
}

async fn due(s: &dyn ServerStore, now: i64) -> Vec<Purgeable> {
    s.purgeable(at(now - 30 * DAY_MS)).await.unwrap()
}

fn connection(workspace: &str, name: &str, sealed: &str, now: i64) -> Connection {
    Connection {
        id: format!("conn-{workspace}-{name}"),
        workspace_id: workspace.to_owned(),
        name: name.to_owned(),
        kind: "bearer".into(),
        hosts: vec!["api.example.com".into()],
        settings: json!({}),
        sealed: sealed.to_owned(),
        created_by: "user:ada".into(),
        created_at: at(now),
        updated_at: at(now),
        rotated_at: None,
        revoked_at: None,
        deleted_at: None,
    }
}

pub async fn purging_a_flow_removes_it_from_every_table(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "doomed", "d1", T0).await;
    let keep = save(s, WS, "kept", "d1", T0).await;
    for i in 0..3 {
        finished_run(s, &v, T0 + i, None).await;
    }
    let kept_run = finished_run(s, &keep, T0, None).await;
    let deleted = T0 + 10;
    s.set_flow_deleted(WS, "doomed", true, at(deleted)).await.unwrap();
    assert!(due(s, deleted + 30 * DAY_MS - 1).await.is_empty(), "not a millisecond early");
    let due = due(s, deleted + 30 * DAY_MS).await;
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].kind, due[0].name.as_str(), due[0].id.as_str()),
        (ObjectKind::Flow, "doomed", v.flow_id.as_str())
    );

    let dry = purge(s, &due[0], true).await;
    assert_eq!(rows(&dry, "runs"), 3, "{dry:?}");
    assert!(!db.scan(&v.flow_id).await.is_empty(), "a dry run keeps everything");
    let real = purge(s, &due[0], false).await;
    assert_eq!(
        real.iter().map(|(t, n)| (t.as_str(), *n)).collect::<Vec<_>>(),
        dry.iter().map(|(t, n)| (t.as_str(), *n)).collect::<Vec<_>>()
    );
    assert_eq!((rows(&real, "flow_versions"), rows(&real, "flows"), rows(&real, "run_events")), (1, 1, 15));
    assert!(db.scan(&v.flow_id).await.is_empty(), "{:?}", db.scan(&v.flow_id).await);
    assert!(db.scan(&v.id).await.is_empty(), "no row names its version");
    assert!(s.run(WS, &kept_run).await.is_ok(), "other flows keep their runs");
    assert!(s.purgeable(at(deleted + 31 * DAY_MS)).await.unwrap().is_empty());
}

pub async fn restored_objects_are_not_purged(db: &TestDb) {
    let s = &*db.store;
    save(s, WS, "back", "d1", T0).await;
    s.set_flow_deleted(WS, "back", true, at(T0)).await.unwrap();
    let found = due(s, T0 + 31 * DAY_MS).await;
    assert_eq!(found.len(), 1);
    s.set_flow_deleted(WS, "back", false, at(T0 + DAY_MS)).await.unwrap();
    let tables = purge(s, &found[0], false).await;
    assert!(tables.is_empty(), "restored since it was found: {tables:?}");
    assert!(s.flow(WS, "back").await.is_ok());
}

pub async fn purging_a_connection_leaves_no_trace_of_its_secret(db: &TestDb) {
    let s = &*db.store;
    let canary = format!("sealed-canary-{}", uuid::Uuid::now_v7().simple());
    s.create_connection(&connection(WS, "github", &canary, T0)).await.unwrap();
    s.create_connection(&connection(WS, "kept", "sealed-other", T0)).await.unwrap();
    s.set_connection_deleted(WS, "github", true, at(T0)).await.unwrap();
    let found = due(s, T0 + 30 * DAY_MS).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ObjectKind::Connection);
    assert_eq!(db.scan(&canary).await, ["connections"]);
    assert_ne!(db.file_holds(&canary), Some(false), "the scan finds the secret while it is stored");
    let tables = purge(s, &found[0], false).await;
    assert_eq!(tables, [("connections".to_owned(), 1)]);
    assert!(db.scan(&canary).await.is_empty());
    assert!(s.connection(WS, "kept").await.is_ok());
    s.flush_deleted().await.unwrap();
    if let Some(holds) = db.file_holds(&canary) {
        assert!(!holds, "the purged secret's bytes are still in the SQLite files");
    }
}

pub async fn purging_a_workspace_removes_it_from_every_table(db: &TestDb) {
    let s = &*db.store;
    let ws = format!("gone{}", uuid::Uuid::now_v7().simple());
    let owner = s
        .create_user(steward_store::NewUser {
            id: "u-owner".into(),
            email: "owner@example.com".into(),
            name: None,
            password_hash: "x".into(),
            now: at(T0),
        })
        .await
        .unwrap();
    s.create_workspace(&ws, "Gone", &owner.id, at(T0)).await.unwrap();
    let v = save(s, &ws, "f", "d1", T0).await;
    for i in 0..3 {
        finished_run(s, &v, T0 + i, None).await;
    }
    let canary = format!("sealed-canary-{}", uuid::Uuid::now_v7().simple());
    s.create_connection(&connection(&ws, "github", &canary, T0)).await.unwrap();
    let key = WorkspaceKey {
        workspace_id: ws.clone(),
        wrapped: "wrapped-key".into(),
        master_key_id: "m1".into(),
        created_at: at(T0),
        rotated_at: None,
    };
    s.put_workspace_key(&key).await.unwrap();
    s.set_policy(
        &ws,
        &PolicySettings { payload_days: Some(1), ..PolicySettings::default() },
        "user:ada",
        at(T0),
    )
    .await
    .unwrap();
    let token = ApiToken {
        id: "tok-1".into(),
        digest: "digest-1".into(),
        workspace_id: ws.clone(),
        user_id: owner.id.clone(),
        name: "t".into(),
        permissions: steward_auth::Permissions::all(),
        created_at: at(T0),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    s.create_token(&token).await.unwrap();
    s.save_agent(&ws, "triage", "name: triage", "d1", at(T0)).await.unwrap();
    let usage = steward_store::UsageDelta {
        workspace: ws.clone(),
        day: "2023-11-14".into(),
        agent: "triage".into(),
        input_tokens: 1,
        output_tokens: 1,
        cost_micros: 1,
        model_calls: 1,
        tool_calls: 0,
    };
    s.add_usage(&usage).await.unwrap();
    let thread = s.create_thread(&ws, "triage", "Hello", at(T0)).await.unwrap();
    s.add_message(&ws, &thread.id, "hello", "run-1", at(T0)).await.unwrap();
    // Another workspace's data stays.
    let other = save(s, OTHER, "f", "d1", T0).await;
    let other_run = finished_run(s, &other, T0, None).await;

    db.tamper(&format!("UPDATE workspaces SET deleted_at = {T0} WHERE id = '{ws}'")).await;
    let found: Vec<Purgeable> =
        due(s, T0 + 30 * DAY_MS).await.into_iter().filter(|p| p.kind == ObjectKind::Workspace).collect();
    assert_eq!(found.len(), 1);
    let dry = purge(s, &found[0], true).await;
    let real = purge(s, &found[0], false).await;
    assert_eq!(real, dry);
    for table in [
        "runs",
        "flows",
        "connections",
        "workspace_keys",
        "workspace_policies",
        "api_tokens",
        "memberships",
        "agent_versions",
        "agent_usage",
        "agent_threads",
        "agent_thread_messages",
        "workspaces",
    ] {
        assert!(rows(&real, table) > 0, "{table}: {real:?}");
    }
    assert!(db.scan(&ws).await.is_empty(), "rows of the workspace are left in {:?}", db.scan(&ws).await);
    assert!(db.scan(&canary).await.is_empty());
    assert!(s.run(OTHER, &other_run).await.is_ok());
    s.flush_deleted().await.unwrap();
    if let Some(holds) = db.file_holds(&canary) {
        assert!(!holds, "the purged secret's bytes are still in the SQLite files");
    }
}

fn audit_event(workspace: Option<&str>, n: i64, now: i64) -> NewAuditEvent {
    NewAuditEvent {
        workspace: workspace.map(str::to_owned),
        actor: "user:ada".into(),
        action: "flow.applied".into(),
        object_type: "flow".into(),
        object_id: Some(format!("flow-{n}")),
        source: None,
        details: json!({ "n": n }),
        now: at(now),
    }
}

async fn sweep_audit(s: &dyn ServerStore, now: i64, workspace: Option<&str>, dry_run: bool) -> u64 {
    let mut after_seq = 0;
    let mut total = 0;
    loop {
        let sweep = AuditSweep { now: at(now), default_days: 365, workspace, after_seq, limit: 2, dry_run };
        let swept = s.sweep_audit(&sweep).await.unwrap();
        total += swept.removed.iter().map(|(_, n)| n).sum::<u64>();
        match swept.last_seq {
            Some(last) => after_seq = last,
            None => return total,
        }
    }
}

/// Entries expire per their workspace's policy (outside any workspace: the default); the
/// chain still verifies, reports what was pruned, and still detects an edit.
pub async fn audit_pruning_keeps_the_chain_verifiable(db: &TestDb) {
    let s = &*db.store;
    s.set_policy("short", &PolicySettings { audit_days: Some(30), ..PolicySettings::default() }, "u", at(T0))
        .await
        .unwrap();
    // seq 1..=8, alternating; all at T0.
    let plan =
        [Some("short"), None, Some("short"), Some("short"), Some("long"), Some("short"), None, Some("short")];
    for (n, ws) in plan.iter().enumerate() {
        s.append_audit(audit_event(*ws, n as i64, T0)).await.unwrap();
    }
    let day30 = T0 + 30 * DAY_MS;
    assert_eq!(sweep_audit(s, day30 - 1, None, false).await, 0, "not a millisecond early");
    assert_eq!(sweep_audit(s, day30, None, true).await, 4, "the newest entry is kept for the next link");
    assert_eq!(
        steward_store::verify_chain(s).await.unwrap().unwrap().checked,
        8,
        "the dry run changed nothing"
    );
    assert_eq!(sweep_audit(s, day30, Some("long"), false).await, 0);
    assert_eq!(sweep_audit(s, day30, None, false).await, 4);
    let report = steward_store::verify_chain(s).await.unwrap().unwrap();
    assert_eq!(report.checked, 4);
    let spans: Vec<(i64, i64)> = report.pruned.iter().map(|r| (r.first_seq, r.last_seq)).collect();
    assert_eq!(spans, [(1, 1), (3, 4), (6, 6)]);

    // A year on: the default applies to entries outside any workspace and to workspaces
    // without a policy; appends go on linking to the kept head.
    s.append_audit(audit_event(Some("long"), 9, day30)).await.unwrap();
    assert_eq!(sweep_audit(s, T0 + 365 * DAY_MS, None, false).await, 4, "seq 2, 5, 7, 8");
    let report = steward_store::verify_chain(s).await.unwrap().unwrap();
    let spans: Vec<(i64, i64)> = report.pruned.iter().map(|r| (r.first_seq, r.last_seq)).collect();
    assert_eq!((report.checked, spans), (1, vec![(1, 8)]), "adjacent stretches merge");
    s.append_audit(audit_event(None, 10, day30)).await.unwrap();
    assert_eq!(steward_store::verify_chain(s).await.unwrap().unwrap().checked, 2);

    // Edits are still detected, and so is a removal without a record.
    assert_eq!(db.tamper("UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 9").await, 1);
    assert_eq!(steward_store::verify_chain(s).await.unwrap().unwrap_err().seq, 9);
    db.tamper("UPDATE audit_log SET actor = 'user:ada' WHERE seq = 9").await;
    assert!(steward_store::verify_chain(s).await.unwrap().is_ok());
    assert_eq!(db.tamper("UPDATE audit_pruned SET last_hash = 'forged'").await, 1);
    let broken = steward_store::verify_chain(s).await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 9, "a forged record does not link: {broken:?}");
}
