//! Listing runs and workspace isolation.

use steward_engine::RunStatus;
use steward_store::{Error, RunFilter};

use crate::support::{OTHER, T0, TestDb, WS, at, create, ids, save};

pub async fn list_runs_filters_and_pages(db: &TestDb) {
    let s = &*db.store;
    let a = save(s, WS, "a", "d1", T0).await;
    let b = save(s, WS, "b", "d1", T0).await;
    for i in 0..5 {
        create(s, &a, T0 + i).await;
    }
    for i in 5..7 {
        create(s, &b, T0 + i).await;
    }
    create(s, &b, T0 + 7).await;
    create(s, &b, T0 + 7).await;
    let o = save(s, OTHER, "a", "d1", T0).await;
    let foreign = create(s, &o, T0 + 100).await;

    let all = s.list_runs(WS, &RunFilter::default()).await.unwrap();
    assert_eq!(all.len(), 9);
    let keys: Vec<_> = all.iter().map(|r| (r.created_at, r.id.clone())).collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(keys, sorted, "newest first, ties by id");
    let filter = |f: RunFilter| async move { s.list_runs(WS, &f).await.unwrap() };
    assert_eq!(filter(RunFilter { flow: Some("a".into()), ..RunFilter::default() }).await.len(), 5);
    assert_eq!(filter(RunFilter { since: Some(at(T0 + 5)), ..RunFilter::default() }).await.len(), 4);
    let claimed = s.claim("x", at(T0 + 50), 1000, 1).await.unwrap();
    let running = filter(RunFilter { status: Some(RunStatus::Running), ..RunFilter::default() }).await;
    assert_eq!(ids(&running), ids(&claimed));
    let both = RunFilter {
        flow: Some("b".into()),
        status: Some(RunStatus::Queued),
        since: Some(at(T0 + 6)),
        ..RunFilter::default()
    };
    assert_eq!(filter(both).await.len(), 3);

    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = filter(RunFilter { before: before.clone(), limit: 4, ..RunFilter::default() }).await;
        before = page.last().map(|r| r.id.clone());
        let done = page.len() < 4;
        pages.extend(page);
        if done {
            break;
        }
    }
    assert_eq!(ids(&pages), ids(&all), "pages follow each other without gaps or repeats");
    let other = s.list_runs(OTHER, &RunFilter::default()).await.unwrap();
    assert_eq!(ids(&other), [foreign]);
}

pub async fn workspaces_are_isolated(db: &TestDb) {
    let s = &*db.store;
    let v = save(s, WS, "a", "d1", T0).await;
    let r = create(s, &v, T0).await;
    assert!(matches!(s.run(OTHER, &r).await, Err(Error::NotFound(_))));
    assert!(s.list_runs(OTHER, &RunFilter::default()).await.unwrap().is_empty());
    let cursor = RunFilter { before: Some(r.clone()), ..RunFilter::default() };
    assert!(s.list_runs(OTHER, &cursor).await.unwrap().is_empty());
    assert!(matches!(s.version(OTHER, &v.id).await, Err(Error::NotFound(_))));
    assert_eq!(s.latest_version(OTHER, "a").await.unwrap(), None);
    assert!(s.list_flows(OTHER, false).await.unwrap().is_empty());
    assert_eq!(s.run(WS, &r).await.unwrap().id, r);
}
