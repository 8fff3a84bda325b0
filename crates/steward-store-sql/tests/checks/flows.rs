//! Flow versions: numbering, digest dedupe, lookups, and migrations run twice.

use steward_store::{Error, FlowSummary};

use crate::support::{OTHER, T0, TestDb, WS, at, new_version, save};

pub async fn save_version_numbers_and_dedupes(db: &TestDb) {
    let s = &*db.store;
    let v1 = save(s, WS, "a", "d1", T0).await;
    assert_eq!((v1.version, v1.name.as_str(), v1.workspace.as_str()), (1, "a", WS));
    assert_eq!(v1.source, "source of a d1");
    let again = save(s, WS, "a", "d1", T0 + 5).await;
    assert_eq!(again, v1, "same digest as the newest version returns it unchanged");
    let v2 = save(s, WS, "a", "d2", T0 + 10).await;
    assert_eq!((v2.version, &v2.flow_id), (2, &v1.flow_id));
    assert_ne!(v2.id, v1.id);
    let v3 = save(s, WS, "a", "d1", T0 + 20).await;
    assert_eq!(v3.version, 3, "an older digest that is not the newest is a new version");
    let b = save(s, WS, "b", "d1", T0).await;
    assert_eq!(b.version, 1);
    assert_ne!(b.flow_id, v1.flow_id);
    let other = save(s, OTHER, "a", "d1", T0).await;
    assert_eq!(other.version, 1);
    assert_ne!(other.flow_id, v1.flow_id);
    assert_eq!(s.version(WS, &v2.id).await.unwrap(), v2);
    assert!(matches!(s.version(OTHER, &v2.id).await, Err(Error::NotFound(_))));
    assert!(matches!(s.version(WS, "missing").await, Err(Error::NotFound(_))));
}

pub async fn save_version_keeps_fields(db: &TestDb) {
    let mut new = new_version(WS, "c", "d1", T0);
    new.concurrency = Some(3);
    new.source = "line 1\n  \"quoted\" ünïcode ✓\n".to_owned();
    let saved = db.store.save_version(new.clone()).await.unwrap();
    assert_eq!(saved.concurrency, Some(3));
    assert_eq!(saved.source, new.source);
    assert_eq!(saved.file_name, new.file_name);
    assert_eq!(saved.created_at, at(T0));
    assert_eq!(db.store.version(WS, &saved.id).await.unwrap(), saved);
}

pub async fn latest_version_and_list_flows(db: &TestDb) {
    let s = &*db.store;
    assert_eq!(s.latest_version(WS, "a").await.unwrap(), None);
    assert!(s.list_flows(WS, false).await.unwrap().is_empty());
    let a1 = save(s, WS, "a", "d1", T0).await;
    let a2 = save(s, WS, "a", "d2", T0 + 10).await;
    let b1 = save(s, WS, "b", "d1", T0 + 5).await;
    save(s, OTHER, "z", "d1", T0).await;
    assert_eq!(s.latest_version(WS, "a").await.unwrap(), Some(a2));
    assert_eq!(s.latest_version(WS, "b").await.unwrap(), Some(b1.clone()));
    let flows = s.list_flows(WS, false).await.unwrap();
    let expected = vec![
        FlowSummary {
            id: a1.flow_id.clone(),
            name: "a".into(),
            latest_version: 2,
            updated_at: at(T0 + 10),
            disabled_at: None,
            deleted_at: None,
        },
        FlowSummary {
            id: b1.flow_id.clone(),
            name: "b".into(),
            latest_version: 1,
            updated_at: at(T0 + 5),
            disabled_at: None,
            deleted_at: None,
        },
    ];
    assert_eq!(flows, expected);
    assert_eq!(s.list_flows(OTHER, false).await.unwrap().len(), 1);
}

pub async fn migrations_are_idempotent(db: &TestDb) {
    let v = save(&*db.store, WS, "a", "d1", T0).await;
    let again = db.reopen().await;
    let third = db.reopen().await;
    assert_eq!(again.latest_version(WS, "a").await.unwrap(), Some(v.clone()));
    assert_eq!(third.version(WS, &v.id).await.unwrap(), v);
}

pub async fn flows_disable_delete_and_restore(db: &TestDb) {
    let s = &*db.store;
    let v1 = save(s, WS, "a", "d1", T0).await;
    let v2 = save(s, WS, "a", "d2", T0 + 10).await;
    save(s, WS, "b", "d1", T0).await;
    let versions: Vec<i64> = s.versions(WS, "a").await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(versions, [2, 1]);
    assert!(s.versions(OTHER, "a").await.unwrap().is_empty());
    assert!(matches!(s.flow(OTHER, "a").await, Err(Error::NotFound(_))));

    let disabled = s.set_flow_disabled(WS, "a", true, at(T0 + 20)).await.unwrap();
    assert_eq!((disabled.disabled_at, disabled.latest_version), (Some(at(T0 + 20)), 2));
    assert_eq!(s.flow(WS, "a").await.unwrap().disabled_at, Some(at(T0 + 20)));
    let (newest, disabled_at) = s.startable(WS, "a").await.unwrap().unwrap();
    assert_eq!((newest.version, disabled_at), (2, Some(at(T0 + 20))));
    assert_eq!(s.set_flow_disabled(WS, "a", false, at(T0 + 21)).await.unwrap().disabled_at, None);
    assert_eq!(s.startable(WS, "a").await.unwrap().map(|(v, d)| (v.version, d)), Some((2, None)));
    assert_eq!(s.startable(OTHER, "a").await.unwrap(), None, "another workspace's flow");
    assert!(matches!(s.set_flow_disabled(OTHER, "a", true, at(T0)).await, Err(Error::NotFound(_))));

    let deleted = s.set_flow_deleted(WS, "a", true, at(T0 + 30)).await.unwrap();
    assert_eq!(deleted.deleted_at, Some(at(T0 + 30)));
    let names = |flows: Vec<FlowSummary>| flows.into_iter().map(|f| f.name).collect::<Vec<_>>();
    assert_eq!(names(s.list_flows(WS, false).await.unwrap()), ["b"]);
    assert_eq!(names(s.list_flows(WS, true).await.unwrap()), ["a", "b"]);
    assert_eq!(s.latest_version(WS, "a").await.unwrap(), None);
    assert_eq!(s.startable(WS, "a").await.unwrap(), None, "deleted");
    assert!(matches!(s.set_flow_disabled(WS, "a", true, at(T0)).await, Err(Error::NotFound(_))));
    // Runs pin versions: a deleted flow's versions still resolve.
    assert_eq!(s.version(WS, &v1.id).await.unwrap(), v1);

    assert_eq!(s.set_flow_deleted(WS, "a", false, at(T0 + 40)).await.unwrap().deleted_at, None);
    assert_eq!(s.latest_version(WS, "a").await.unwrap(), Some(v2));
}
