//! Webhooks: found by the digest of their path until revoked, listed per workspace.

use steward_store::{Error, Webhook};

use crate::support::{OTHER, T0, TestDb, WS, at};

fn webhook(id: &str, workspace: &str, flow: &str) -> Webhook {
    Webhook {
        id: id.to_owned(),
        workspace_id: workspace.to_owned(),
        flow_name: flow.to_owned(),
        path_digest: format!("path-{id}"),
        scheme: "stripe".into(),
        signing_secret: Some("whsec_1".into()),
        mode: "sync".into(),
        sync_timeout_ms: 5000,
        created_by: "user:1".into(),
        created_at: at(T0),
        revoked_at: None,
    }
}

pub async fn webhooks_are_found_by_path_until_revoked(db: &TestDb) {
    let s = &*db.store;
    s.create_webhook(&webhook("w1", WS, "a")).await.unwrap();
    s.create_webhook(&webhook("w2", WS, "b")).await.unwrap();
    s.create_webhook(&webhook("w3", OTHER, "a")).await.unwrap();
    assert_eq!(s.webhook_by_path("path-w1").await.unwrap(), Some(webhook("w1", WS, "a")));
    assert_eq!(s.webhook_by_path("nope").await.unwrap(), None);
    assert_eq!(s.webhooks(WS, None).await.unwrap().len(), 2);
    let ids: Vec<_> = s.webhooks(WS, Some("a")).await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(ids, ["w1"]);
    assert!(matches!(s.revoke_webhook(OTHER, "w1", at(T0)).await, Err(Error::NotFound(_))));
    assert_eq!(s.revoke_webhook(WS, "w1", at(T0 + 1)).await.unwrap().revoked_at, Some(at(T0 + 1)));
    assert_eq!(s.webhook_by_path("path-w1").await.unwrap(), None);
    assert!(matches!(s.revoke_webhook(WS, "w1", at(T0)).await, Err(Error::NotFound(_))));
}
