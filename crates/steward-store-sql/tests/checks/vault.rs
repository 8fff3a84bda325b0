//! The vault's tables: one data key per workspace (the first writer wins, rotation is a
//! compare-and-set) and connections per workspace (unique names, rotation, revocation, soft
//! deletion), never visible to other workspaces.

use std::sync::Arc;

use serde_json::json;
use steward_store::{Connection, Error, WorkspaceKey};

use crate::support::{OTHER, T0, TestDb, WS, at};

fn key(workspace: &str, wrapped: &str, master: &str) -> WorkspaceKey {
    WorkspaceKey {
        workspace_id: workspace.to_owned(),
        wrapped: wrapped.to_owned(),
        master_key_id: master.to_owned(),
        created_at: at(T0),
        rotated_at: None,
    }
}

fn connection(workspace: &str, name: &str) -> Connection {
    Connection {
        id: format!("{workspace}-{name}"),
        workspace_id: workspace.to_owned(),
        name: name.to_owned(),
        kind: "api_key".into(),
        hosts: vec!["api.github.com".into()],
        settings: json!({ "header": "Authorization" }),
        sealed: "s1.sealed-1".into(),
        created_by: "user:1".into(),
        created_at: at(T0),
        updated_at: at(T0),
        rotated_at: None,
        revoked_at: None,
        deleted_at: None,
    }
}

pub async fn a_workspace_has_one_data_key_and_rotation_is_compare_and_set(db: &TestDb) {
    let s = &*db.store;
    assert_eq!(s.workspace_key(WS).await.unwrap(), None);
    let first = s.put_workspace_key(&key(WS, "dk1.m1.a", "m1")).await.unwrap();
    assert_eq!(first, key(WS, "dk1.m1.a", "m1"));
    let second = s.put_workspace_key(&key(WS, "dk1.m1.b", "m1")).await.unwrap();
    assert_eq!(second.wrapped, "dk1.m1.a", "the first key stays");
    s.put_workspace_key(&key(OTHER, "dk1.m1.c", "m1")).await.unwrap();
    assert_eq!(s.workspace_keys().await.unwrap().len(), 2);

    let mut rotated = key(WS, "dk1.m2.a", "m2");
    rotated.rotated_at = Some(at(T0 + 5));
    assert!(s.rewrap_workspace_key(&rotated, "m1").await.unwrap());
    assert!(!s.rewrap_workspace_key(&rotated, "m1").await.unwrap(), "already moved on");
    assert_eq!(s.workspace_key(WS).await.unwrap(), Some(rotated));
    assert_eq!(s.workspace_key(OTHER).await.unwrap().unwrap().master_key_id, "m1");
}

pub async fn concurrent_first_keys_agree_on_one(db: &TestDb) {
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = if i % 2 == 0 { Arc::clone(&db.store) } else { db.reopen().await };
        tasks.push(tokio::spawn(async move {
            store.put_workspace_key(&key(WS, &format!("dk1.m1.{i}"), "m1")).await.unwrap().wrapped
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "every writer got the same key: {seen:?}");
}

pub async fn connections_are_per_workspace_with_unique_names(db: &TestDb) {
    let s = &*db.store;
    s.create_connection(&connection(WS, "github")).await.unwrap();
    s.create_connection(&connection(WS, "stripe")).await.unwrap();
    s.create_connection(&connection(OTHER, "github")).await.unwrap();
    let dup = s.create_connection(&Connection { id: "x".into(), ..connection(WS, "github") }).await;
    assert!(matches!(&dup, Err(Error::Conflict(m)) if m.contains("github")), "{dup:?}");

    let got = s.connection(WS, "github").await.unwrap();
    assert_eq!(got, connection(WS, "github"));
    assert!(matches!(s.connection(WS, "nope").await, Err(Error::NotFound(_))));
    let names: Vec<String> = s.connections(WS, false).await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["github", "stripe"]);
    assert!(matches!(s.revoke_connection(OTHER, "stripe", at(T0)).await, Err(Error::NotFound(_))));
}

pub async fn connections_rotate_revoke_delete_and_restore(db: &TestDb) {
    let s = &*db.store;
    s.create_connection(&connection(WS, "github")).await.unwrap();
    let revoked = s.revoke_connection(WS, "github", at(T0 + 1)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(T0 + 1)));
    let rotated = s.rotate_connection(WS, "github", "s1.sealed-2", at(T0 + 2)).await.unwrap();
    assert_eq!(
        (rotated.sealed.as_str(), rotated.rotated_at, rotated.revoked_at),
        ("s1.sealed-2", Some(at(T0 + 2)), None)
    );

    let deleted = s.set_connection_deleted(WS, "github", true, at(T0 + 3)).await.unwrap();
    assert_eq!(deleted.deleted_at, Some(at(T0 + 3)));
    assert!(s.connections(WS, false).await.unwrap().is_empty());
    assert_eq!(s.connections(WS, true).await.unwrap().len(), 1);
    assert!(matches!(s.rotate_connection(WS, "github", "s1.x", at(T0 + 4)).await, Err(Error::NotFound(_))));
    let again = s.create_connection(&Connection { id: "new".into(), ..connection(WS, "github") }).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "a deleted connection still holds its name");

    let restored = s.set_connection_deleted(WS, "github", false, at(T0 + 5)).await.unwrap();
    assert_eq!((restored.deleted_at, restored.sealed.as_str()), (None, "s1.sealed-2"));
}
