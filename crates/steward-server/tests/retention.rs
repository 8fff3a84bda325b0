//! The retention pruner and the policy API, on SQLite and PostgreSQL, with a fake clock: each
//! category is removed when its period is over and not a millisecond before, a flow's own
//! `retention:` wins over the workspace policy, chat transcripts follow their own period, a dry
//! run reports exactly what the real pass then does and changes nothing, deleted agents are
//! purged with their chat threads, and every removal leaves a receipt in the audit log.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use steward_auth::Role;
use steward_engine::{Event, RunStatus, StepError, Timestamp};
use steward_server::pruner::{self, PassReport, PruneOptions};
use steward_store::{
    AuditFilter, Connection, DAY_MS, FlowVersion, NewAuditEvent, NewFlowVersion, NewRun, RunUpdate,
    ServerStore,
};
use support::{Db, TestApp, WS};

/// A fixed start, well before the real time the test accounts were made at.
const F: i64 = 1_600_000_000_000;

async fn flow(s: &dyn ServerStore, name: &str, retention: &str) -> FlowVersion {
    let source = format!("name: {name}\n{retention}steps: [{{ id: a, transform: '1' }}]\n");
    let new = NewFlowVersion {
        workspace: WS.into(),
        name: name.into(),
        file_name: format!("{name}.yaml"),
        digest: format!("{:x}", source.len()),
        source,
        concurrency: None,
        now: Timestamp(F - DAY_MS),
    };
    s.save_version(new).await.unwrap()
}

/// A run of `v` that failed at `finished`, with `payload-<id>` in its payloads and
/// `error-<id>` in its error messages.
async fn finished_run(s: &dyn ServerStore, v: &FlowVersion, finished: i64) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let payload = format!("payload-{id}");
    let error = StepError::http(500, format!("error-{id}"));
    let run = NewRun {
        id: id.clone(),
        workspace: WS.into(),
        flow_version_id: v.id.clone(),
        inputs: json!({ "email": payload }),
        parent: None,
        concurrency_key: None,
        concurrency_limit: None,
        now: Timestamp(finished - 10),
        // Leased until far in the future: the test server's own executor must not claim it
        // (its clock is the real one, long after `finished`).
        leased_to: Some(("test".into(), Timestamp(i64::MAX / 4))),
    };
    let events = [
        Event::RunStarted { run_id: id.clone(), inputs: run.inputs.clone(), trigger: None },
        Event::StepSucceeded { key: "a".into(), output: json!(payload) },
    ];
    s.create_run(run, &events).await.unwrap();
    let end = Event::RunFinished { status: RunStatus::Failed, output: None, error: Some(error.clone()) };
    let entries = [steward_engine::Entry { seq: 3, at: Timestamp(finished), event: end }];
    let update = RunUpdate {
        status: Some(RunStatus::Failed),
        error: Some(error),
        finished_at: Some(Timestamp(finished)),
        ..RunUpdate::default()
    };
    let append = steward_store::Append {
        run_id: &id,
        owner: "test",
        after_seq: 2,
        entries: &entries,
        update,
        now: Timestamp(finished),
    };
    s.append(append).await.unwrap();
    id
}

/// Which of the run's data is left: (payloads, error messages, the run itself).
async fn left(s: &dyn ServerStore, id: &str) -> (bool, bool, bool) {
    let Ok(run) = s.run(WS, id).await else { return (false, false, false) };
    let text = format!("{:?} {:?}", s.journal(id).await.unwrap(), run);
    (text.contains(&format!("payload-{id}")), text.contains(&format!("error-{id}")), true)
}

async fn pass_at(s: &dyn ServerStore, now: i64) -> PassReport {
    pruner::pass(s, Timestamp(now), &PruneOptions::default()).await.unwrap()
}

fn categories(report: &PassReport) -> Vec<(String, u64)> {
    report.removals.iter().map(|r| (r.category.clone(), r.runs)).collect()
}

async fn each_category_expires_on_time(db: Db) {
    let app = TestApp::new(db).await;
    app.workspace(WS).await;
    let s = &*app.store;
    let v = flow(s, "plain", "").await;
    let run = finished_run(s, &v, F).await;
    let steps = [
        (90 * DAY_MS - 1, (true, true, true), vec![]),
        (90 * DAY_MS, (false, true, true), vec![("payloads".to_owned(), 1)]),
        (180 * DAY_MS - 1, (false, true, true), vec![]),
        (180 * DAY_MS, (false, false, true), vec![("errors".to_owned(), 1)]),
        (365 * DAY_MS - 1, (false, false, true), vec![]),
        (365 * DAY_MS, (false, false, false), vec![("metadata".to_owned(), 1)]),
    ];
    for (age, expected, removed) in steps {
        let report = pass_at(s, F + age).await;
        assert_eq!(left(s, &run).await, expected, "at {age} ms");
        assert_eq!(categories(&report), removed, "at {age} ms");
    }
    // Each removal left a receipt, without the data.
    let filter = AuditFilter { action: Some("data.deleted".into()), before: None, limit: 10 };
    let receipts = s.audit(WS, &filter).await.unwrap();
    let subjects: Vec<String> = receipts.iter().map(|e| e.object_id.clone().unwrap_or_default()).collect();
    assert_eq!(subjects, ["metadata", "errors", "payloads"]);
    assert!(receipts.iter().all(|e| e.actor == pruner::ACTOR && e.object_type == "retention"));
    assert_eq!(receipts[2].details["tables"][0]["table"], "run_events");
    let text = serde_json::to_string(&receipts).unwrap();
    assert!(!text.contains("payload-") && !text.contains("error-"), "{text}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_category_expires_on_time_on_sqlite() {
    each_category_expires_on_time(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_category_expires_on_time_on_postgres() {
    each_category_expires_on_time(Db::Postgres).await;
}

async fn flow_overrides_win(db: Db) {
    let app = TestApp::new(db).await;
    let owner = app.workspace(WS).await;
    let s = &*app.store;
    let body = json!({ "payload_days": 30, "error_days": 60, "metadata_days": 90 });
    let path = format!("/api/v1/workspaces/{WS}/policy");
    let (status, view) = app.call(Method::PUT, &path, Some(&owner.token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let short = flow(s, "short", "retention: { payloads: 1d, errors: 2d, metadata: 3d }\n").await;
    let long = flow(s, "long", "retention: { payloads: 200d, metadata: 400d }\n").await;
    let plain = flow(s, "plain", "").await;
    let (short, long, plain) =
        (finished_run(s, &short, F).await, finished_run(s, &long, F).await, finished_run(s, &plain, F).await);
    let all = || async { (left(s, &short).await, left(s, &long).await, left(s, &plain).await) };
    let full = (true, true, true);

    pass_at(s, F + DAY_MS).await;
    assert_eq!(all().await, ((false, true, true), full, full), "the flow's 1d beats the workspace's 30d");
    pass_at(s, F + 3 * DAY_MS).await;
    assert_eq!(all().await, ((false, false, false), full, full));
    pass_at(s, F + 60 * DAY_MS).await;
    assert_eq!(all().await.2, (false, false, true), "the workspace policy for flows without their own");
    assert_eq!(
        all().await.1,
        (true, false, true),
        "errors follow the workspace's 60d where the flow is silent"
    );
    pass_at(s, F + 90 * DAY_MS).await;
    assert_eq!(all().await.1, (true, false, true), "the flow's 400d beats the workspace's 90d");
    assert!(!all().await.2.2);
    pass_at(s, F + 200 * DAY_MS).await;
    assert_eq!(all().await.1, (false, false, true));
    pass_at(s, F + 400 * DAY_MS).await;
    assert!(!all().await.1.2);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_overrides_win_on_sqlite() {
    flow_overrides_win(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_overrides_win_on_postgres() {
    flow_overrides_win(Db::Postgres).await;
}

/// Everything the database holds that a pass may change, for comparing before and after.
async fn snapshot(s: &dyn ServerStore, runs: &[String]) -> Vec<String> {
    let mut out = vec![format!("{:?}", steward_store::verify_chain(s).await.unwrap())];
    out.push(format!("{:?}", s.list_flows(WS, true).await.unwrap()));
    out.push(format!("{:?}", s.connections(WS, true).await.unwrap().len()));
    for id in runs {
        out.push(format!("{:?}", left(s, id).await));
    }
    out
}

async fn dry_run_matches_the_real_pass(db: Db) {
    let app = TestApp::new(db).await;
    let owner = app.workspace(WS).await;
    let s = &*app.store;
    let now = F + 400 * DAY_MS;
    let plain = flow(s, "plain", "").await;
    let doomed = flow(s, "doomed", "").await;
    let mut runs = Vec::new();
    for age in [10, 100, 200, 370, 380] {
        runs.push(finished_run(s, &plain, now - age * DAY_MS).await);
    }
    for age in [1, 2, 3] {
        runs.push(finished_run(s, &doomed, now - age * DAY_MS).await);
    }
    s.set_flow_deleted(WS, "doomed", true, Timestamp(now - 31 * DAY_MS)).await.unwrap();
    let connection = Connection {
        id: "c1".into(),
        workspace_id: WS.into(),
        name: "old".into(),
        kind: "bearer".into(),
        hosts: vec!["api.example.com".into()],
        settings: json!({}),
        sealed: "sealed".into(),
        created_by: "user:x".into(),
        created_at: Timestamp(F),
        updated_at: Timestamp(F),
        rotated_at: None,
        revoked_at: None,
        deleted_at: None,
    };
    s.create_connection(&connection).await.unwrap();
    s.set_connection_deleted(WS, "old", true, Timestamp(now - 40 * DAY_MS)).await.unwrap();
    for n in 0..4 {
        // The last one is recent: the old ones are not the head of the chain, which stays.
        let at = if n < 3 { now - 366 * DAY_MS } else { now - DAY_MS };
        let entry = NewAuditEvent {
            workspace: Some(WS.into()),
            actor: "user:x".into(),
            action: "flow.applied".into(),
            object_type: "flow".into(),
            object_id: Some(format!("f{n}")),
            source: None,
            details: json!({}),
            now: Timestamp(at),
        };
        s.append_audit(entry).await.unwrap();
    }

    let before = snapshot(s, &runs).await;
    let options = PruneOptions { dry_run: true, run_batch: 2, audit_batch: 2, ..PruneOptions::default() };
    let dry = pruner::pass(s, Timestamp(now), &options).await.unwrap();
    assert_eq!(snapshot(s, &runs).await, before, "a dry run changes nothing");
    let kinds: Vec<&str> = dry.removals.iter().map(|r| r.category.as_str()).collect();
    assert_eq!(kinds, ["audit", "purge", "purge", "metadata", "errors", "payloads"], "{dry:?}");

    let real =
        pruner::pass(s, Timestamp(now), &PruneOptions { dry_run: false, ..options.clone() }).await.unwrap();
    assert_eq!(real.removals, dry.removals);
    assert_ne!(snapshot(s, &runs).await, before);
    let again = pruner::pass(s, Timestamp(now), &PruneOptions { dry_run: true, ..options }).await.unwrap();
    assert!(again.removals.is_empty(), "{again:?}");
    let report = steward_store::verify_chain(s).await.unwrap().unwrap();
    assert_eq!(report.pruned.len(), 1, "the old entries were pruned with a record: {report:?}");
    let path = format!("/api/v1/workspaces/{WS}/audit/verify");
    let (status, verified) = app.call(Method::GET, &path, Some(&owner.token), None).await;
    assert_eq!((status, &verified["intact"]), (StatusCode::OK, &json!(true)), "{verified}");
    let stretch = &report.pruned[0];
    assert_eq!(
        verified["pruned"],
        json!([{ "first_seq": stretch.first_seq, "last_seq": stretch.last_seq, "pruned_at": stretch.pruned_at.0 }]),
        "the API names the stretch retention removed"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_matches_the_real_pass_on_sqlite() {
    dry_run_matches_the_real_pass(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_matches_the_real_pass_on_postgres() {
    dry_run_matches_the_real_pass(Db::Postgres).await;
}

/// A chat message older than the workspace's transcript period goes, with the thread it
/// leaves empty; a recent one stays. A dry run counts what the real pass then removes.
async fn transcripts_expire(db: Db) {
    let app = TestApp::new(db).await;
    let owner = app.workspace(WS).await;
    let s = &*app.store;
    let old = s.create_thread(WS, "triage", "Old", Timestamp(F)).await.unwrap();
    s.add_message(WS, &old.id, "old-message", "run-1", Timestamp(F)).await.unwrap();
    let mixed = s.create_thread(WS, "triage", "Mixed", Timestamp(F)).await.unwrap();
    s.add_message(WS, &mixed.id, "old-mixed", "run-2", Timestamp(F)).await.unwrap();
    s.add_message(WS, &mixed.id, "recent-message", "run-3", Timestamp(F + 60 * DAY_MS)).await.unwrap();
    let contents = || async {
        let mut out = Vec::new();
        for thread in s.list_threads(WS, None).await.unwrap() {
            let messages = s.thread_messages(WS, &thread.id).await.unwrap();
            out.extend(messages.into_iter().map(|m| m.content));
        }
        out.sort();
        out
    };
    let all = ["old-message", "old-mixed", "recent-message"];

    // The default period: 90 days, and not a millisecond less.
    let report = pass_at(s, F + 90 * DAY_MS).await;
    assert!(report.removals.is_empty(), "{report:?}");
    assert_eq!(contents().await, all);
    let dry = PruneOptions { dry_run: true, ..PruneOptions::default() };
    let dry = pruner::pass(s, Timestamp(F + 90 * DAY_MS + 1), &dry).await.unwrap();
    assert_eq!(contents().await, all, "a dry run changes nothing");
    let real = pass_at(s, F + 90 * DAY_MS + 1).await;
    assert_eq!(real.removals, dry.removals);
    assert_eq!(categories(&real), [("transcripts".to_owned(), 0)]);
    assert_eq!(
        (real.removals[0].rows, real.removals[0].tables[0].table.as_str()),
        (2, "agent_thread_messages")
    );
    assert_eq!(contents().await, ["recent-message"]);
    assert!(s.thread(WS, &old.id).await.is_err(), "the emptied thread went too");
    assert_eq!(s.thread_messages(WS, &mixed.id).await.unwrap()[0].seq, 2);

    // The workspace's own period, set through the API.
    let path = format!("/api/v1/workspaces/{WS}/policy");
    let body = json!({ "transcript_days": 30 });
    let (status, view) = app.call(Method::PUT, &path, Some(&owner.token), Some(body)).await;
    assert_eq!((status, &view["transcript_days"]), (StatusCode::OK, &json!(30)), "{view}");
    pass_at(s, F + 90 * DAY_MS).await;
    assert_eq!(contents().await, ["recent-message"], "30 days after it was written: kept");
    pass_at(s, F + 90 * DAY_MS + 2).await;
    assert!(contents().await.is_empty());

    let filter = AuditFilter { action: Some("data.deleted".into()), before: None, limit: 10 };
    let receipts = s.audit(WS, &filter).await.unwrap();
    assert_eq!(receipts.len(), 2);
    assert!(receipts.iter().all(|r| r.object_id.as_deref() == Some("transcripts")), "{receipts:?}");
    let text = serde_json::to_string(&receipts).unwrap();
    assert!(!text.contains("-message") && !text.contains("old-mixed"), "receipts hold no content: {text}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_expire_on_sqlite() {
    transcripts_expire(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_expire_on_postgres() {
    transcripts_expire(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_api_validates_normalises_and_audits() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    let viewer = app.member(WS, Role::Viewer).await;
    let path = format!("/api/v1/workspaces/{WS}/policy");
    let (status, view) = app.call(Method::GET, &path, Some(&viewer.token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&view["payload_days"], &view["error_days"], &view["metadata_days"], &view["audit_days"]),
        (&json!(90), &json!(180), &json!(365), &json!(365))
    );
    assert_eq!((&view["transcript_days"], &view["set"]["transcript_days"]), (&json!(90), &Value::Null));
    assert_eq!((&view["egress_hosts"], &view["set"]["payload_days"]), (&Value::Null, &Value::Null));

    for (body, message) in [
        (json!({ "metadata_days": 30 }), "payload_days (90) is longer than metadata_days (30)"),
        (json!({ "audit_days": 0 }), "audit_days is 0; it must be between 1 and 36500"),
        (json!({ "payload_days": 36501 }), "between 1 and 36500"),
        (json!({ "transcript_days": 0 }), "transcript_days is 0"),
        (json!({ "egress_hosts": ["https://api.github.com"] }), "is not a host name"),
    ] {
        let (status, err) = app.call(Method::PUT, &path, Some(&owner.token), Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert!(err["error"]["message"].as_str().unwrap().contains(message), "{body}: {err}");
    }
    let body = json!({ "payload_days": 7, "error_days": 14, "metadata_days": 30, "egress_hosts": [" API.GitHub.com", "*.Example.com"] });
    let (status, view) = app.call(Method::PUT, &path, Some(&owner.token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["egress_hosts"], json!(["api.github.com", "*.example.com"]));
    assert_eq!(
        (&view["payload_days"], &view["audit_days"], &view["set"]["audit_days"]),
        (&json!(7), &json!(365), &Value::Null)
    );
    let (_, read) = app.call(Method::GET, &path, Some(&viewer.token), None).await;
    assert_eq!(read, view);
    let policy = app.store.policy(WS).await.unwrap();
    assert_eq!(
        policy.settings.egress_hosts,
        Some(vec!["api.github.com".to_owned(), "*.example.com".to_owned()])
    );

    let filter = AuditFilter { action: Some("policy.updated".into()), before: None, limit: 10 };
    let entries = app.store.audit(WS, &filter).await.unwrap();
    assert_eq!(entries.len(), 1, "refused changes are not audited as changes");
    assert_eq!(entries[0].details["old"]["payload_days"], Value::Null);
    assert_eq!(entries[0].details["new"]["payload_days"], 7);
    assert_eq!(entries[0].details["new"]["egress_hosts"], json!(["api.github.com", "*.example.com"]));
    app.finish().await;
}

/// An agent deleted more than 30 days ago is purged with its chat threads (whatever their
/// age), leaving a receipt; other agents keep theirs. A dry run reports exactly what the real
/// pass then removes, without counting the purged agent's old messages again as transcripts.
async fn deleted_agents_are_purged_with_their_threads(db: Db) {
    let app = TestApp::new(db).await;
    app.workspace(WS).await;
    let s = &*app.store;
    let now = F + 400 * DAY_MS;
    s.save_agent(WS, "gone", "name: gone", "d1", Timestamp(F)).await.unwrap();
    s.save_agent(WS, "kept", "name: kept", "d2", Timestamp(F)).await.unwrap();
    let gone = s.create_thread(WS, "gone", "Old", Timestamp(F)).await.unwrap();
    s.add_message(WS, &gone.id, "old-words", "run-1", Timestamp(now - 100 * DAY_MS)).await.unwrap();
    s.add_message(WS, &gone.id, "newer-words", "run-2", Timestamp(now - 35 * DAY_MS)).await.unwrap();
    let kept = s.create_thread(WS, "kept", "Kept", Timestamp(F)).await.unwrap();
    s.add_message(WS, &kept.id, "kept-words", "run-3", Timestamp(now - DAY_MS)).await.unwrap();
    let options = PruneOptions { dry_run: true, run_batch: 2, ..PruneOptions::default() };
    s.delete_agent(WS, "gone", Timestamp(now - 30 * DAY_MS + 1)).await.unwrap();
    let early = pruner::pass(s, Timestamp(now), &options).await.unwrap();
    assert!(early.removals.iter().all(|r| r.category != "purge"), "not a millisecond early: {early:?}");
    s.restore_agent(WS, "gone", Timestamp(now)).await.unwrap();
    s.delete_agent(WS, "gone", Timestamp(now - 31 * DAY_MS)).await.unwrap();

    let dry = pruner::pass(s, Timestamp(now), &options).await.unwrap();
    assert_eq!(s.thread_messages(WS, &gone.id).await.unwrap().len(), 2, "a dry run changes nothing");
    let real = pruner::pass(s, Timestamp(now), &PruneOptions { dry_run: false, ..options }).await.unwrap();
    assert_eq!(real.removals, dry.removals);
    let removed: Vec<(&str, Option<&str>)> =
        real.removals.iter().map(|r| (r.category.as_str(), r.object.as_deref())).collect();
    assert_eq!(removed, [("purge", Some("agent gone"))], "{real:?}");
    let tables: Vec<(&str, u64)> =
        real.removals[0].tables.iter().map(|t| (t.table.as_str(), t.rows)).collect();
    assert_eq!(tables, [("agent_thread_messages", 2), ("agent_threads", 1), ("agent_versions", 1)]);
    assert!(s.thread(WS, &gone.id).await.is_err());
    assert!(s.agent(WS, "gone").await.unwrap().is_none());
    assert!(!s.restore_agent(WS, "gone", Timestamp(now)).await.unwrap(), "nothing left to restore");
    assert_eq!(s.thread_messages(WS, &kept.id).await.unwrap().len(), 1);
    assert!(s.agent(WS, "kept").await.unwrap().is_some());

    let filter = AuditFilter { action: Some("data.deleted".into()), before: None, limit: 10 };
    let receipts = s.audit(WS, &filter).await.unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        (receipts[0].object_type.as_str(), receipts[0].object_id.as_deref(), receipts[0].actor.as_str()),
        ("agent", Some("gone"), pruner::ACTOR)
    );
    assert_eq!(receipts[0].details["tables"][2]["table"], "agent_versions");
    let text = serde_json::to_string(&receipts).unwrap();
    assert!(!text.contains("-words"), "{text}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_agents_are_purged_with_their_threads_on_sqlite() {
    deleted_agents_are_purged_with_their_threads(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_agents_are_purged_with_their_threads_on_postgres() {
    deleted_agents_are_purged_with_their_threads(Db::Postgres).await;
}
