//! Concurrency limits: at most `concurrency_limit` leased runs per key, also under racing claims.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steward_engine::RunStatus;
use steward_store::RunFilter;
use tokio::sync::Barrier;

use crate::support::{T0, TestDb, WS, at, create, finish, ids, new_run, save, started};

pub async fn concurrency_limit_caps_leased_runs(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let keyed = |now| {
        let mut run = new_run(&v, now);
        run.concurrency_key = Some("k".into());
        run.concurrency_limit = Some(1);
        run
    };
    let mut k = Vec::new();
    for i in 0..3 {
        let run = keyed(T0 + i);
        s.create_run(run.clone(), &[started(&run)]).await.unwrap();
        k.push(run.id);
    }
    let free = create(s, &v, T0 + 10).await;
    let got = s.claim("a", at(T0 + 20), 1000, 10).await.unwrap();
    assert_eq!(ids(&got), [k[0].clone(), free], "one run of key k at a time");
    assert!(s.claim("b", at(T0 + 20), 1000, 10).await.unwrap().is_empty());
    finish(s, &k[0], "a", 1, RunStatus::Succeeded, T0 + 30).await;
    assert_eq!(ids(&s.claim("b", at(T0 + 40), 1000, 10).await.unwrap()), [k[1].clone()]);
    assert!(s.claim("c", at(T0 + 40), 1000, 10).await.unwrap().is_empty());
    // b's lease ran out: the slot is free again, for k[1] which is due before k[2].
    let again = ids(&s.claim("c", at(T0 + 1040), 1000, 10).await.unwrap());
    assert_eq!(again.iter().filter(|id| k.contains(id)).collect::<Vec<_>>(), [&k[1]]);
}

pub async fn concurrency_limit_within_one_claim(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    for i in 0..4 {
        let mut run = new_run(&v, T0 + i);
        run.concurrency_key = Some("m".into());
        run.concurrency_limit = Some(2);
        s.create_run(run, &[]).await.unwrap();
    }
    assert_eq!(s.claim("a", at(T0 + 10), 1000, 10).await.unwrap().len(), 2);
    assert!(s.claim("b", at(T0 + 10), 1000, 10).await.unwrap().is_empty());
}

pub async fn concurrency_limit_holds_under_concurrent_claims(db: &TestDb) {
    let v = save(&*db.store, WS, "a", "d1", T0).await;
    for i in 0..10 {
        let mut run = new_run(&v, T0 + i);
        run.concurrency_key = Some("k".into());
        run.concurrency_limit = Some(2);
        db.store.create_run(run.clone(), &[started(&run)]).await.unwrap();
    }
    // Counts runs from the moment a claim returns them until just before they are finished,
    // a subset of the time the database holds their lease.
    let live = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for owner in 0..4 {
        let store = if owner % 2 == 0 { Arc::clone(&db.store) } else { db.reopen().await };
        let (live, done) = (Arc::clone(&live), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let owner = format!("owner-{owner}");
            while done.load(Ordering::SeqCst) < 10 {
                let got = store.claim(&owner, at(T0 + 100), 60_000, 2).await.unwrap();
                let now_live = live.fetch_add(got.len(), Ordering::SeqCst) + got.len();
                assert!(now_live <= 2, "{now_live} runs of a key with limit 2 leased at once");
                for run in got {
                    live.fetch_sub(1, Ordering::SeqCst);
                    finish(&*store, &run.id, &owner, 1, RunStatus::Succeeded, T0 + 200).await;
                    done.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task).await.unwrap().unwrap();
    }
    let finished = RunFilter { status: Some(RunStatus::Succeeded), ..RunFilter::default() };
    assert_eq!(db.store.list_runs(WS, &finished).await.unwrap().len(), 10);
}

pub async fn concurrency_limit_holds_for_simultaneous_claims(db: &TestDb) {
    let v = save(&*db.store, WS, "a", "d1", T0).await;
    let stores = [Arc::clone(&db.store), db.reopen().await, Arc::clone(&db.store), db.reopen().await];
    for round in 0..5 {
        // More runs than one claim reads at a time, so simultaneous claims see different runs.
        for i in 0..24 {
            let mut run = new_run(&v, T0 + i);
            run.concurrency_key = Some(format!("k{round}"));
            run.concurrency_limit = Some(2);
            db.store.create_run(run, &[]).await.unwrap();
        }
        let barrier = Arc::new(Barrier::new(stores.len()));
        let mut tasks = Vec::new();
        for (i, store) in stores.iter().enumerate() {
            let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.claim(&format!("owner-{i}"), at(T0 + 100), 60_000, 2).await.unwrap().len()
            }));
        }
        let mut claimed = 0;
        for task in tasks {
            claimed += task.await.unwrap();
        }
        // Earlier rounds' keys are full, so everything claimed is of this round's key. A claim
        // may leave a run for later when another holds the key, but never exceeds the limit.
        assert!((1..=2).contains(&claimed), "round {round}: {claimed} runs of a key with limit 2 claimed");
    }
}
