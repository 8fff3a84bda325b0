//! Creating runs, their journals, appending and rewriting events.

use serde_json::json;
use steward_engine::{ErrorKind, Event, RunStatus, StepError};
use steward_store::{Error, RunUpdate};

use crate::support::{OTHER, T0, TestDb, WS, append, at, create, entries, new_run, save, started};

pub async fn create_run_and_journal_round_trip(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let run = new_run(&v, T0 + 1);
    let events = vec![
        started(&run),
        Event::StepScheduled { key: "fetch".into() },
        Event::StepSucceeded {
            key: "fetch".into(),
            output: json!({"z": 1, "a": [1, 2.5, "x", null], "é": {"b": true}}),
        },
        Event::StepRetrying {
            key: "items[2].fetch".into(),
            attempt: 2,
            error: StepError::http(503, "unavailable"),
            retry_at: at(T0 + 500),
        },
    ];
    s.create_run(run.clone(), &events).await.unwrap();
    let journal = s.journal(&run.id).await.unwrap();
    assert_eq!(journal, entries(1, T0 + 1, &events));
    let rec = s.run(WS, &run.id).await.unwrap();
    assert_eq!((rec.status, rec.wake_at, rec.flow_name.as_str()), (RunStatus::Queued, Some(at(T0 + 1)), "a"));
    assert_eq!((rec.created_at, rec.updated_at), (at(T0 + 1), at(T0 + 1)));
    assert_eq!((rec.flow_version_id.as_str(), rec.workspace.as_str()), (v.id.as_str(), WS));
    assert_eq!((rec.lease_owner, rec.lease_expires_at, rec.finished_at), (None, None, None));
    assert_eq!((rec.output, rec.error, rec.parent_run_id), (None, None, None));

    let mut child = new_run(&v, T0 + 2);
    child.parent = Some((run.id.clone(), "call".into()));
    s.create_run(child.clone(), &[]).await.unwrap();
    let rec = s.run(WS, &child.id).await.unwrap();
    assert_eq!((rec.parent_run_id, rec.parent_step_key), (Some(run.id.clone()), Some("call".into())));
    assert!(s.journal(&child.id).await.unwrap().is_empty());
}

pub async fn create_run_rejects_bad_input(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let run = new_run(&v, T0);
    s.create_run(run.clone(), &[started(&run)]).await.unwrap();
    let dup = s.create_run(run.clone(), &[started(&run)]).await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "duplicate id: {dup:?}");
    let mut unknown = new_run(&v, T0);
    unknown.flow_version_id = "missing".into();
    assert!(matches!(s.create_run(unknown, &[]).await, Err(Error::NotFound(_))));
    let mut foreign = new_run(&v, T0);
    foreign.workspace = OTHER.into();
    assert!(
        matches!(s.create_run(foreign, &[]).await, Err(Error::NotFound(_))),
        "version of another workspace"
    );
    assert_eq!(s.journal(&run.id).await.unwrap().len(), 1);
}

pub async fn append_conflicts_write_nothing(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let r = create(s, &v, T0).await;
    s.claim("a", at(T0), 1000, 1).await.unwrap();
    let before = s.run(WS, &r).await.unwrap();
    let next = [Event::StepScheduled { key: "x".into() }, Event::StepStarted { key: "x".into(), attempt: 1 }];
    let update = || RunUpdate { status: Some(RunStatus::Succeeded), ..RunUpdate::default() };
    for (owner, after) in [("b", 1), ("a", 0), ("a", 2)] {
        let new = entries(after + 1, T0 + 5, &next);
        let res = s.append(append(&r, owner, after, &new, update(), T0 + 5)).await;
        assert!(matches!(res, Err(Error::Conflict(_))), "owner {owner}, after {after}: {res:?}");
    }
    let gap = entries(3, T0 + 5, &next);
    let res = s.append(append(&r, "a", 1, &gap, update(), T0 + 5)).await;
    assert!(matches!(res, Err(Error::Invalid(_))), "entries must follow after_seq: {res:?}");
    let missing = s.append(append("missing", "a", 0, &[], update(), T0)).await;
    assert!(matches!(missing, Err(Error::NotFound(_))));
    assert_eq!(s.journal(&r).await.unwrap().len(), 1);
    assert_eq!(s.run(WS, &r).await.unwrap(), before);

    let new = entries(2, T0 + 6, &next);
    s.append(append(&r, "a", 1, &new, RunUpdate::default(), T0 + 6)).await.unwrap();
    assert_eq!(s.journal(&r).await.unwrap()[1..], new);
    let output = RunUpdate { output: Some(json!({"partial": [1, 2]})), ..RunUpdate::default() };
    s.append(append(&r, "a", 3, &[], output, T0 + 7)).await.unwrap();
    let rec = s.run(WS, &r).await.unwrap();
    assert_eq!(
        (rec.output, rec.updated_at, rec.status),
        (Some(json!({"partial": [1, 2]})), at(T0 + 7), RunStatus::Running)
    );
    assert_eq!(s.journal(&r).await.unwrap().len(), 3);
}

pub async fn append_finishing_clears_lease_and_wake(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let r = create(s, &v, T0).await;
    s.claim("a", at(T0), 1000, 1).await.unwrap();
    let error = StepError::new(ErrorKind::Code, "boom");
    let update = RunUpdate {
        status: Some(RunStatus::Failed),
        error: Some(error.clone()),
        finished_at: Some(at(T0 + 9)),
        ..RunUpdate::default()
    };
    let last = [Event::RunFinished { status: RunStatus::Failed, output: None, error: Some(error.clone()) }];
    s.append(append(&r, "a", 1, &entries(2, T0 + 9, &last), update, T0 + 9)).await.unwrap();
    let rec = s.run(WS, &r).await.unwrap();
    assert_eq!((rec.status, rec.error, rec.finished_at), (RunStatus::Failed, Some(error), Some(at(T0 + 9))));
    assert_eq!((rec.lease_owner, rec.lease_expires_at, rec.wake_at), (None, None, None));
    assert_eq!(rec.updated_at, at(T0 + 9));
    assert!(s.claim("b", at(T0 + 5000), 1000, 10).await.unwrap().is_empty());
    assert_eq!(s.next_due().await.unwrap(), None);
    s.release(&r, "a", None).await.unwrap();
    let again = s.append(append(&r, "a", 2, &[], RunUpdate::default(), T0 + 10)).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "a finished run has no lease: {again:?}");
}

pub async fn rewrite_events_replaces_payloads(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let run = new_run(&v, T0);
    let events = [
        started(&run),
        Event::StepSucceeded { key: "big".into(), output: json!({"secret": "x".repeat(100)}) },
        Event::StepSucceeded { key: "small".into(), output: json!(1) },
    ];
    s.create_run(run.clone(), &events).await.unwrap();
    let mut journal = s.journal(&run.id).await.unwrap();
    journal[1].event = Event::StepSucceeded { key: "big".into(), output: json!(null) };
    s.rewrite_events(&run.id, &journal[1..2]).await.unwrap();
    assert_eq!(s.journal(&run.id).await.unwrap(), journal);
    let unknown = entries(9, T0, &events[..1]);
    assert!(matches!(s.rewrite_events(&run.id, &unknown).await, Err(Error::NotFound(_))));
}

/// More events in one append than one insert statement carries on either backend.
pub async fn append_of_many_events_keeps_them_all_in_order(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let id = create(s, &v, T0).await;
    s.claim("me", at(T0), 30_000, 1).await.unwrap();
    let events: Vec<Event> = (0..250).map(|i| Event::StepScheduled { key: format!("s{i}") }).collect();
    let many = entries(2, T0 + 1, &events);
    s.append(append(&id, "me", 1, &many, RunUpdate::default(), T0 + 1)).await.unwrap();
    let journal = s.journal(&id).await.unwrap();
    assert_eq!(journal.len(), 251);
    assert_eq!(&journal[1..], many.as_slice());
}

pub async fn data_sent_events_are_found_by_workspace_and_period(db: &TestDb) {
    let s = &*db.store;
    let sent = |key: &str, host: &str| Event::DataSent {
        key: key.into(),
        host: host.into(),
        connections: vec!["gh".into()],
        bytes: 42,
        categories: vec!["inputs".into()],
    };
    for (ws, name, t) in [(WS, "a", T0 + 10), (OTHER, "b", T0 + 10), (WS, "c", T0 + 1000)] {
        let v = save(s, ws, name, "d1", T0).await;
        let run = new_run(&v, t);
        let events =
            vec![started(&run), Event::StepScheduled { key: "x".into() }, sent("x", &format!("{name}.test"))];
        s.create_run(run, &events).await.unwrap();
    }
    let found = s.data_sent(WS, at(T0), at(T0 + 1000)).await.unwrap();
    assert_eq!(found.len(), 1, "other workspaces and later times are left out: {found:?}");
    assert_eq!((found[0].flow_name.as_str(), found[0].entry.seq), ("a", 3));
    assert!(matches!(&found[0].entry.event, Event::DataSent { host, bytes: 42, .. } if host == "a.test"));
    let all = s.data_sent(WS, at(T0), at(T0 + 1001)).await.unwrap();
    assert_eq!(all.iter().map(|r| r.flow_name.as_str()).collect::<Vec<_>>(), ["a", "c"]);
}
