//! Agent versions (numbered, deduplicated by digest, per workspace), their soft deletion,
//! restoration and purge, and usage counters that add up per workspace, agent and day.

use steward_store::{DAY_MS, ObjectKind, PurgeStep, UsageDelta};

use crate::support::{OTHER, T0, TestDb, WS, at};

pub async fn agent_versions_number_dedupe_and_stay_in_their_workspace(db: &TestDb) {
    let s = &db.store;
    let (v1, made) = s.save_agent(WS, "triage", "a: 1", "d1", at(T0)).await.unwrap();
    assert!(made);
    assert_eq!(v1.version, 1);
    let (same, made) = s.save_agent(WS, "triage", "a: 1", "d1", at(T0 + 1)).await.unwrap();
    assert!(!made, "the same digest makes no new version");
    assert_eq!(same.id, v1.id);
    let (v2, _) = s.save_agent(WS, "triage", "a: 2", "d2", at(T0 + 2)).await.unwrap();
    assert_eq!(v2.version, 2);
    s.save_agent(WS, "other", "b", "d3", at(T0)).await.unwrap();
    assert_eq!(s.agent(WS, "triage").await.unwrap().map(|a| a.version), Some(2));
    assert_eq!(s.agent_version(WS, &v1.id).await.unwrap().source, "a: 1", "old versions stay readable");
    let names: Vec<(String, i64)> =
        s.list_agents(WS).await.unwrap().into_iter().map(|a| (a.name, a.version)).collect();
    assert_eq!(names, vec![("other".to_owned(), 1), ("triage".to_owned(), 2)]);
    assert!(s.agent(OTHER, "triage").await.unwrap().is_none(), "not visible to another workspace");
    assert!(s.agent_version(OTHER, &v1.id).await.is_err());
    assert!(s.delete_agent(WS, "triage", at(T0 + 3)).await.unwrap());
    assert!(s.agent(WS, "triage").await.unwrap().is_none());
    assert!(!s.delete_agent(WS, "triage", at(T0 + 4)).await.unwrap());
}

pub async fn deleted_agents_are_hidden_until_restored_or_saved(db: &TestDb) {
    let s = &db.store;
    let (v1, _) = s.save_agent(WS, "triage", "a: 1", "d1", at(T0)).await.unwrap();
    let (v2, _) = s.save_agent(WS, "triage", "a: 2", "d2", at(T0 + 1)).await.unwrap();
    s.save_agent(WS, "other", "b", "d3", at(T0)).await.unwrap();
    assert!(!s.restore_agent(WS, "triage", at(T0 + 2)).await.unwrap(), "not deleted");
    assert!(!s.delete_agent(OTHER, "triage", at(T0 + 2)).await.unwrap(), "not in another workspace");
    assert!(s.delete_agent(WS, "triage", at(T0 + 2)).await.unwrap());
    assert!(s.agent(WS, "triage").await.unwrap().is_none());
    let names: Vec<String> = s.list_agents(WS).await.unwrap().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["other"]);
    assert_eq!(s.agent_version(WS, &v1.id).await.unwrap().source, "a: 1", "versions still load by id");

    assert!(s.restore_agent(WS, "triage", at(T0 + 3)).await.unwrap());
    assert!(!s.restore_agent(WS, "triage", at(T0 + 3)).await.unwrap(), "restored once");
    assert_eq!(s.agent(WS, "triage").await.unwrap().map(|a| a.id), Some(v2.id.clone()));
    assert_eq!(s.list_agents(WS).await.unwrap().len(), 2);

    // Saving the name again clears the deletion, with or without a new version.
    assert!(s.delete_agent(WS, "triage", at(T0 + 4)).await.unwrap());
    let (same, made) = s.save_agent(WS, "triage", "a: 2", "d2", at(T0 + 5)).await.unwrap();
    assert_eq!((same.id.as_str(), made), (v2.id.as_str(), false));
    assert_eq!(s.agent(WS, "triage").await.unwrap().map(|a| a.version), Some(2));
    assert!(s.delete_agent(WS, "triage", at(T0 + 6)).await.unwrap());
    let (v3, made) = s.save_agent(WS, "triage", "a: 3", "d3", at(T0 + 7)).await.unwrap();
    assert_eq!((v3.version, made), (3, true), "numbering goes on after the deleted versions");
    assert_eq!(s.agent(WS, "triage").await.unwrap().map(|a| a.version), Some(3));
    assert!(s.purgeable(at(T0 + 100 * DAY_MS)).await.unwrap().is_empty(), "nothing deleted is left");
}

pub async fn purging_an_agent_removes_its_versions_and_threads(db: &TestDb) {
    let s = &db.store;
    let (v1, _) = s.save_agent(WS, "doomed", "a: 1", "d1", at(T0)).await.unwrap();
    s.save_agent(WS, "doomed", "a: 2", "d2", at(T0)).await.unwrap();
    s.save_agent(WS, "kept", "k", "d3", at(T0)).await.unwrap();
    let canary = format!("said-to-doomed-{}", uuid::Uuid::now_v7().simple());
    let doomed = s.create_thread(WS, "doomed", "hello", at(T0)).await.unwrap();
    s.add_message(WS, &doomed.id, &canary, "run-1", at(T0)).await.unwrap();
    s.add_message(WS, &doomed.id, &canary, "run-2", at(T0)).await.unwrap();
    let kept = s.create_thread(WS, "kept", "hi", at(T0)).await.unwrap();
    s.add_message(WS, &kept.id, "kept words", "run-3", at(T0)).await.unwrap();
    s.add_usage(&UsageDelta {
        workspace: WS.into(),
        day: "2026-11-22".into(),
        agent: "doomed".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let deleted = T0 + 10;
    assert!(s.delete_agent(WS, "doomed", at(deleted)).await.unwrap());
    assert!(s.purgeable(at(deleted - 1)).await.unwrap().is_empty(), "not a millisecond early");
    let due = s.purgeable(at(deleted)).await.unwrap();
    assert_eq!(due.len(), 1);
    let target = &due[0];
    assert_eq!(
        (target.kind, target.workspace.as_str(), target.name.as_str(), target.deleted_at),
        (ObjectKind::Agent, WS, "doomed", at(deleted))
    );

    let dry = s.purge_step(&PurgeStep { target, limit: 2, dry_run: true }).await.unwrap();
    assert!(s.agent_version(WS, &v1.id).await.is_ok(), "a dry run keeps everything");
    let real = s.purge_step(&PurgeStep { target, limit: 2, dry_run: false }).await.unwrap();
    assert!(real.done);
    assert_eq!(real.tables, dry.tables);
    let counts: Vec<(&str, u64)> = real.tables.iter().map(|t| (t.table.as_str(), t.rows)).collect();
    assert_eq!(counts, [("agent_thread_messages", 2), ("agent_threads", 1), ("agent_versions", 2)]);
    assert!(s.agent_version(WS, &v1.id).await.is_err());
    assert!(db.scan(&canary).await.is_empty(), "{:?}", db.scan(&canary).await);
    assert!(s.thread(WS, &doomed.id).await.is_err());
    assert_eq!(s.thread_messages(WS, &kept.id).await.unwrap().len(), 1, "other agents keep their threads");
    assert!(s.agent(WS, "kept").await.unwrap().is_some());
    assert_eq!(s.usage(WS, "2026-11-22", "2026-11-22").await.unwrap().len(), 1, "counters stay");
    assert!(s.purgeable(at(deleted + 31 * DAY_MS)).await.unwrap().is_empty());
}

pub async fn restored_agents_are_not_purged(db: &TestDb) {
    let s = &db.store;
    s.save_agent(WS, "back", "a", "d1", at(T0)).await.unwrap();
    s.delete_agent(WS, "back", at(T0)).await.unwrap();
    let found = s.purgeable(at(T0 + DAY_MS)).await.unwrap();
    assert_eq!(found.len(), 1);
    s.restore_agent(WS, "back", at(T0 + DAY_MS)).await.unwrap();
    let swept = s.purge_step(&PurgeStep { target: &found[0], limit: 2, dry_run: false }).await.unwrap();
    assert!(swept.tables.is_empty(), "restored since it was found: {swept:?}");
    assert!(s.agent(WS, "back").await.unwrap().is_some());
}

pub async fn usage_adds_up_per_day_and_agent(db: &TestDb) {
    let s = &db.store;
    let delta = |day: &str, agent: &str, tokens: u64| UsageDelta {
        workspace: WS.into(),
        day: day.into(),
        agent: agent.into(),
        input_tokens: tokens,
        output_tokens: 1,
        cost_micros: 7,
        model_calls: 1,
        tool_calls: 0,
    };
    s.add_usage(&delta("2026-11-21", "a", 10)).await.unwrap();
    s.add_usage(&delta("2026-11-22", "a", 10)).await.unwrap();
    s.add_usage(&delta("2026-11-22", "a", 5)).await.unwrap();
    s.add_usage(&delta("2026-11-22", "b", 1)).await.unwrap();
    s.add_usage(&UsageDelta { workspace: OTHER.into(), ..delta("2026-11-22", "a", 99) }).await.unwrap();
    let rows = s.usage(WS, "2026-11-22", "2026-11-22").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].agent.as_str(), rows[0].input_tokens, rows[0].model_calls, rows[0].cost_micros),
        ("a", 15, 2, 14)
    );
    assert_eq!((rows[1].agent.as_str(), rows[1].input_tokens), ("b", 1));
    assert_eq!(s.usage(WS, "2026-11-01", "2026-11-30").await.unwrap().len(), 3);
}
