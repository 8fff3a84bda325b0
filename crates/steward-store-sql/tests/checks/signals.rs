//! Signals and wakeups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use steward_engine::{Event, RunStatus};
use steward_store::{Error, RunUpdate, Signal};

use crate::support::{OTHER, T0, TestDb, WS, append, at, create, entries, ids, save};

pub async fn signal_wakes_released_run_until_consumed(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let r = create(s, &v, T0).await;
    s.claim("a", at(T0), 1000, 1).await.unwrap();
    s.release(&r, "a", None).await.unwrap();
    assert_eq!(s.run(WS, &r).await.unwrap().wake_at, None);
    assert_eq!(s.next_due().await.unwrap(), None, "waiting for a signal");
    assert!(s.claim("b", at(T0 + 10_000), 1000, 10).await.unwrap().is_empty());
    let approval = Signal::Approval { step: "ok".into(), approved: true, by: "ann".into(), reason: None };
    let cancel = Signal::Cancel { reason: "stop".into() };
    s.signal(WS, &r, &approval, at(T0 + 50)).await.unwrap();
    s.signal(WS, &r, &cancel, at(T0 + 60)).await.unwrap();
    let pending = s.signals(&r).await.unwrap();
    assert_eq!(pending.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(), [approval, cancel]);
    assert!(pending[0].0 < pending[1].0);
    assert_eq!(s.run(WS, &r).await.unwrap().wake_at, Some(at(T0 + 50)));
    assert_eq!(ids(&s.claim("b", at(T0 + 60), 1000, 10).await.unwrap()), [r.as_str()]);
    assert_eq!(s.signals(&r).await.unwrap().len(), 2, "listed until consumed");
    let decided =
        [Event::ApprovalDecided { key: "ok".into(), approved: true, by: "ann".into(), reason: None }];
    let consume = RunUpdate { consumed_signals: vec![pending[0].0], ..RunUpdate::default() };
    s.append(append(&r, "b", 1, &entries(2, T0 + 61, &decided), consume, T0 + 61)).await.unwrap();
    assert_eq!(s.signals(&r).await.unwrap(), pending[1..]);
}

pub async fn signal_while_leased_keeps_lease_and_survives_release(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let r = create(s, &v, T0).await;
    s.claim("a", at(T0), 1000, 1).await.unwrap();
    s.signal(WS, &r, &Signal::Cancel { reason: "stop".into() }, at(T0 + 20)).await.unwrap();
    let rec = s.run(WS, &r).await.unwrap();
    assert_eq!((rec.lease_owner.as_deref(), rec.status), (Some("a"), RunStatus::Running));
    assert!(s.claim("b", at(T0 + 30), 1000, 10).await.unwrap().is_empty(), "still leased");
    // The executor releases without having seen the signal: the run stays due.
    s.release(&r, "a", None).await.unwrap();
    assert_eq!(ids(&s.claim("b", at(T0 + 30), 1000, 10).await.unwrap()), [r]);
}

pub async fn signal_on_unknown_run_is_not_found(db: &TestDb) {
    let s = &*db.store;
    let cancel = Signal::Cancel { reason: "x".into() };
    assert!(matches!(s.signal(WS, "missing", &cancel, at(T0)).await, Err(Error::NotFound(_))));
    let v = save(s, WS, "a", "d1", T0).await;
    let r = create(s, &v, T0).await;
    assert!(matches!(s.signal(OTHER, &r, &cancel, at(T0)).await, Err(Error::NotFound(_))));
    assert!(s.signals(&r).await.unwrap().is_empty());
}

pub async fn wakeup_waits_for_work_or_timeout(db: &TestDb) {
    let v = save(&*db.store, WS, "a", "d1", T0).await;
    let started = Instant::now();
    db.store.wait(300).await;
    let idle = started.elapsed();
    assert!(idle >= Duration::from_millis(250) && idle < Duration::from_secs(3), "idle wait took {idle:?}");

    let other = db.reopen().await;
    let store = Arc::clone(&db.store);
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        store.wait(10_000).await;
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    create(&*other, &v, T0).await;
    let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    assert!(woke < Duration::from_secs(3), "woken after {woke:?}");
}
