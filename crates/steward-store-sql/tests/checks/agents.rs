//! Agent versions (numbered, deduplicated by digest, per workspace) and usage counters that
//! add up per workspace, agent and day.

use steward_store::UsageDelta;

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
    assert!(s.delete_agent(WS, "triage").await.unwrap());
    assert!(s.agent(WS, "triage").await.unwrap().is_none());
    assert!(!s.delete_agent(WS, "triage").await.unwrap());
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
