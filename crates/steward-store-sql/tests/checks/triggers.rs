//! Webhooks: found by the digest of their path until revoked, listed per workspace.

use steward_store::{Error, Schedule, Webhook};

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

fn schedule(id: &str, workspace: &str, next: Option<i64>) -> Schedule {
    Schedule {
        id: id.to_owned(),
        workspace_id: workspace.to_owned(),
        flow_name: "a".into(),
        cron: "* * * * * *".into(),
        timezone: "Europe/Berlin".into(),
        catch_up: "once".into(),
        inputs: serde_json::json!({ "n": 1, "who": "ünï" }),
        next_fire_at: next.map(at),
        created_by: "user:1".into(),
        created_at: at(T0),
    }
}

pub async fn schedules_are_due_in_order_and_advance_once(db: &TestDb) {
    let s = &*db.store;
    assert_eq!(s.next_schedule_tick().await.unwrap(), None);
    s.create_schedule(&schedule("s1", WS, Some(T0 + 20))).await.unwrap();
    s.create_schedule(&schedule("s2", OTHER, Some(T0 + 10))).await.unwrap();
    s.create_schedule(&schedule("s3", WS, None)).await.unwrap();
    assert_eq!(s.schedules(WS, None).await.unwrap().len(), 2);
    assert_eq!(s.schedules(WS, Some("a")).await.unwrap()[0], schedule("s1", WS, Some(T0 + 20)));
    assert_eq!(s.next_schedule_tick().await.unwrap(), Some(at(T0 + 10)));
    let due: Vec<_> = s.due_schedules(at(T0 + 20), 10).await.unwrap().into_iter().map(|x| x.id).collect();
    assert_eq!(due, ["s2", "s1"], "earliest first, every workspace");
    assert!(s.due_schedules(at(T0 + 9), 10).await.unwrap().is_empty());

    // Two servers advancing the same tick: only the first moves it.
    assert!(s.advance_schedule("s1", at(T0 + 20), Some(at(T0 + 21))).await.unwrap());
    assert!(!s.advance_schedule("s1", at(T0 + 20), Some(at(T0 + 21))).await.unwrap());
    assert_eq!(s.schedules(WS, None).await.unwrap()[0].next_fire_at, Some(at(T0 + 21)));

    assert!(matches!(s.delete_schedule(OTHER, "s1", at(T0)).await, Err(Error::NotFound(_))));
    s.delete_schedule(WS, "s1", at(T0)).await.unwrap();
    assert!(s.due_schedules(at(T0 + 100), 10).await.unwrap().iter().all(|x| x.id != "s1"));
    assert!(!s.advance_schedule("s1", at(T0 + 21), Some(at(T0 + 22))).await.unwrap(), "deleted");
}
