//! Claiming due runs, leases, heartbeats, releases and `next_due`.

use std::collections::HashSet;
use std::sync::Arc;

use steward_engine::{Event, RunStatus};
use steward_store::{Error, QueueDepth, RunUpdate};

use crate::support::{T0, TestDb, WS, append, at, create, entries, finish, ids, new_run, save, started};

pub async fn claim_respects_wake_at_leases_limit_and_order(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let r1 = create(s, &v, T0 + 2).await;
    let r2 = create(s, &v, T0).await;
    let r3 = create(s, &v, T0 + 1).await;
    assert!(s.claim("a", at(T0 - 1), 1000, 10).await.unwrap().is_empty(), "nothing due yet");
    assert!(s.claim("a", at(T0 + 5), 1000, 0).await.unwrap().is_empty(), "limit 0");
    let first = s.claim("a", at(T0 + 1), 1000, 1).await.unwrap();
    assert_eq!(ids(&first), [r2.as_str()]);
    let rec = &first[0];
    assert_eq!((rec.status, rec.lease_owner.as_deref()), (RunStatus::Running, Some("a")));
    assert_eq!((rec.lease_expires_at, rec.wake_at), (Some(at(T0 + 1001)), Some(at(T0))));
    assert_eq!(s.run(WS, &r2).await.unwrap(), *rec);
    let rest = s.claim("b", at(T0 + 5), 1000, 10).await.unwrap();
    assert_eq!(ids(&rest), [r3, r1], "oldest due first; leased runs skipped");
    assert!(s.claim("c", at(T0 + 5), 1000, 10).await.unwrap().is_empty());
}

pub async fn expired_lease_is_claimable_by_another_owner(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let r = create(s, &v, T0).await;
    assert_eq!(ids(&s.claim("a", at(T0), 100, 5).await.unwrap()), [r.as_str()]);
    assert!(s.claim("b", at(T0 + 99), 100, 5).await.unwrap().is_empty());
    let taken = s.claim("b", at(T0 + 100), 100, 5).await.unwrap();
    assert_eq!(ids(&taken), [r.as_str()]);
    assert_eq!(taken[0].lease_owner.as_deref(), Some("b"));
    let stale = s.append(append(&r, "a", 1, &[], RunUpdate::default(), T0 + 101)).await;
    assert!(matches!(stale, Err(Error::Conflict(_))), "old owner: {stale:?}");
    assert_eq!(s.heartbeat("a", std::slice::from_ref(&r), at(T0 + 1000)).await.unwrap(), [r]);
}

pub async fn a_run_created_under_a_lease_is_its_creators_until_the_lease_expires(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let mut run = new_run(&v, T0);
    run.leased_to = Some(("a".to_owned(), at(T0 + 100)));
    s.create_run(run.clone(), &[started(&run)]).await.unwrap();
    let rec = s.run(WS, &run.id).await.unwrap();
    assert_eq!((rec.status, rec.lease_owner.as_deref()), (RunStatus::Running, Some("a")));
    assert_eq!(rec.lease_expires_at, Some(at(T0 + 100)));
    assert!(s.claim("b", at(T0 + 99), 100, 5).await.unwrap().is_empty(), "leased to its creator");
    let ok = s.append(append(&run.id, "a", 1, &[], RunUpdate::default(), T0 + 1)).await;
    assert!(ok.is_ok(), "the creator may append: {ok:?}");
    // A creator that died: the run is taken over once the lease runs out.
    assert_eq!(ids(&s.claim("b", at(T0 + 100), 100, 5).await.unwrap()), [run.id.as_str()]);
}

pub async fn a_run_can_be_created_with_its_first_commit_or_not_at_all(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let mut run = new_run(&v, T0);
    run.leased_to = Some(("a".to_owned(), at(T0 + 100)));
    let end = RunUpdate {
        status: Some(RunStatus::Succeeded),
        finished_at: Some(at(T0 + 1)),
        ..RunUpdate::default()
    };
    let finished = Event::RunFinished { status: RunStatus::Succeeded, output: None, error: None };
    let more = entries(2, T0 + 1, std::slice::from_ref(&finished));
    let after_a_gap = entries(6, T0 + 1, &[finished]);
    // A wrong journal position fails the whole write: no run is left behind.
    let bad = s
        .create_run_with(
            run.clone(),
            &[started(&run)],
            append(&run.id, "a", 5, &after_a_gap, end.clone(), T0 + 1),
        )
        .await;
    assert!(matches!(bad, Err(Error::Conflict(_))), "{bad:?}");
    assert!(matches!(s.run(WS, &run.id).await, Err(Error::NotFound(_))));
    let mut elsewhere = run.clone();
    elsewhere.leased_to = Some(("b".to_owned(), at(T0 + 100)));
    let wrong_owner = s
        .create_run_with(elsewhere, &[started(&run)], append(&run.id, "a", 1, &more, end.clone(), T0 + 1))
        .await;
    assert!(matches!(wrong_owner, Err(Error::Invalid(_))), "{wrong_owner:?}");
    let other_run = s
        .create_run_with(
            run.clone(),
            &[started(&run)],
            append("another-run", "a", 1, &more, end.clone(), T0 + 1),
        )
        .await;
    assert!(matches!(other_run, Err(Error::Invalid(_))), "a commit for another run: {other_run:?}");

    s.create_run_with(run.clone(), &[started(&run)], append(&run.id, "a", 1, &more, end.clone(), T0 + 1))
        .await
        .unwrap();
    let rec = s.run(WS, &run.id).await.unwrap();
    assert_eq!(
        (rec.status, rec.lease_owner, rec.finished_at),
        (RunStatus::Succeeded, None, Some(at(T0 + 1)))
    );
    assert_eq!((rec.wake_at, rec.lease_expires_at, rec.updated_at), (None, None, at(T0 + 1)));
    assert_eq!(rec.flow_name, "a");
    assert_eq!(s.journal(&run.id).await.unwrap().len(), 2);
    let again =
        s.create_run_with(run.clone(), &[started(&run)], append(&run.id, "a", 1, &more, end, T0 + 1)).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "the same id twice: {again:?}");
}

pub async fn concurrent_claims_never_overlap(db: &TestDb) {
    let v = save(&*db.store, WS, "a", "d1", T0).await;
    let mut all = HashSet::new();
    for i in 0..20 {
        all.insert(create(&*db.store, &v, T0 + i).await);
    }
    let mut tasks = Vec::new();
    for owner in 0..4 {
        let store = if owner % 2 == 0 { Arc::clone(&db.store) } else { db.reopen().await };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim(&format!("owner-{owner}"), at(T0 + 100), 60_000, 3).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|r| r.id));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(task.await.unwrap());
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a run was claimed twice: {seen:?}");
    assert_eq!(unique, all);
}

pub async fn heartbeat_extends_and_reports_lost_leases(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let r1 = create(s, &v, T0).await;
    let r2 = create(s, &v, T0 + 1).await;
    assert_eq!(s.claim("a", at(T0 + 1), 1000, 10).await.unwrap().len(), 2);
    let runs = [r1.clone(), r2.clone(), "missing".to_owned()];
    assert_eq!(s.heartbeat("a", &runs, at(T0 + 5000)).await.unwrap(), ["missing"]);
    assert_eq!(s.run(WS, &r1).await.unwrap().lease_expires_at, Some(at(T0 + 5000)));
    assert!(s.claim("b", at(T0 + 2000), 1000, 10).await.unwrap().is_empty(), "leases were extended");
    finish(s, &r2, "a", 1, RunStatus::Failed, T0 + 2000).await;
    assert_eq!(s.heartbeat("a", &runs[..2], at(T0 + 6000)).await.unwrap(), [r2.as_str()]);
    assert_eq!(ids(&s.claim("b", at(T0 + 6000), 1000, 10).await.unwrap()), [r1.as_str()]);
    assert_eq!(s.heartbeat("a", &runs[..1], at(T0 + 9000)).await.unwrap(), [r1.as_str()]);
    assert!(s.heartbeat("b", &runs[..1], at(T0 + 9000)).await.unwrap().is_empty());
}

pub async fn release_with_future_wake_at(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let r = create(s, &v, T0).await;
    s.claim("a", at(T0), 1000, 1).await.unwrap();
    assert!(matches!(s.release(&r, "b", Some(at(T0))).await, Err(Error::Conflict(_))));
    assert!(matches!(s.release("missing", "a", None).await, Err(Error::NotFound(_))));
    s.release(&r, "a", Some(at(T0 + 500))).await.unwrap();
    let rec = s.run(WS, &r).await.unwrap();
    assert_eq!((rec.status, rec.wake_at), (RunStatus::Waiting, Some(at(T0 + 500))));
    assert_eq!((rec.lease_owner, rec.lease_expires_at), (None, None));
    assert_eq!(s.next_due().await.unwrap(), Some(at(T0 + 500)));
    assert!(s.claim("b", at(T0 + 499), 1000, 10).await.unwrap().is_empty());
    assert_eq!(ids(&s.claim("b", at(T0 + 500), 1000, 10).await.unwrap()), [r]);
}

pub async fn next_due_accounts_for_leases(db: &TestDb) {
    let s = &*db.store;
    assert_eq!(s.next_due().await.unwrap(), None);
    let v = save(s, WS, "a", "d1", T0).await;
    create(s, &v, T0 + 5).await;
    assert_eq!(s.next_due().await.unwrap(), Some(at(T0 + 5)));
    s.claim("a", at(T0 + 5), 1000, 1).await.unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(at(T0 + 1005)), "a leased run is due when its lease ends");
    create(s, &v, T0 + 100).await;
    assert_eq!(s.next_due().await.unwrap(), Some(at(T0 + 100)));
}

pub async fn queue_depth_counts_due_running_and_waiting(db: &TestDb) {
    let s = &*db.store;
    assert_eq!(s.queue_depth(at(T0)).await.unwrap(), QueueDepth::default());
    let v = save(s, WS, "a", "d1", T0).await;
    let held = create(s, &v, T0).await;
    create(s, &v, T0).await;
    let parked = create(s, &v, T0).await;
    create(s, &v, T0 + 50).await;
    assert_eq!(s.queue_depth(at(T0)).await.unwrap(), QueueDepth { due: 3, running: 0, waiting: 1 });
    let claimed = s.claim("a", at(T0), 1000, 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    s.release(&parked, "a", None).await.unwrap();
    assert_eq!(s.queue_depth(at(T0)).await.unwrap(), QueueDepth { due: 0, running: 2, waiting: 2 });
    assert!(claimed.iter().any(|r| r.id == held));
    // Once the leases lapse, their runs are due again.
    assert_eq!(s.queue_depth(at(T0 + 2000)).await.unwrap(), QueueDepth { due: 3, running: 0, waiting: 1 });
}
