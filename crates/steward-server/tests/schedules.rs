//! Schedules: validation and next fire times over the API, catch-up after downtime, and two
//! servers on one PostgreSQL database firing a per-second schedule exactly once per tick.

#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;
use steward_engine::Timestamp;
use steward_store::Schedule;
use support::{Db, TestApp, WS};

const TICK_FLOW: &str = "name: tick\ninputs:\n  label: { type: string, default: none }\nsteps:\n  - id: at\n    transform: '{ tick: .trigger.tick, label: .inputs.label }'\noutput: ${{ .steps.at.output }}\n";

/// The ticks of the runs started by schedules, from their `run_started` triggers.
async fn ticks(app: &TestApp, token: &str) -> Vec<i64> {
    let (_, page) =
        app.call(Method::GET, &format!("/api/v1/workspaces/{WS}/runs?limit=200"), Some(token), None).await;
    let mut out = Vec::new();
    for run in page["runs"].as_array().unwrap() {
        let id = run["id"].as_str().unwrap();
        let (_, events) = app
            .call(Method::GET, &format!("/api/v1/workspaces/{WS}/runs/{id}/events"), Some(token), None)
            .await;
        out.push(events[0]["event"]["trigger"]["tick"].as_i64().unwrap());
    }
    out.sort_unstable();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_validate_show_next_times_and_fire() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    app.apply(&owner.token, TICK_FLOW).await;
    let path = format!("/api/v1/workspaces/{WS}/flows/tick/schedules");
    let (status, err) =
        app.call(Method::POST, &path, Some(&owner.token), Some(json!({ "cron": "99 * * * *" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"]["message"].as_str().unwrap().contains("99 * * * *"));
    let bad_zone = json!({ "cron": "* * * * *", "timezone": "Mars/Base" });
    assert_eq!(
        app.call(Method::POST, &path, Some(&owner.token), Some(bad_zone)).await.0,
        StatusCode::BAD_REQUEST
    );
    let bad_inputs = json!({ "cron": "* * * * *", "inputs": { "nope": 1 } });
    assert_eq!(
        app.call(Method::POST, &path, Some(&owner.token), Some(bad_inputs)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let berlin = json!({ "cron": "0 9 * * *", "timezone": "Europe/Berlin" });
    let (status, daily) = app.call(Method::POST, &path, Some(&owner.token), Some(berlin)).await;
    assert_eq!(status, StatusCode::CREATED);
    let times: Vec<i64> =
        daily["next_fire_times"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
    assert_eq!(times.len(), 5);
    assert!(times.windows(2).all(|w| [23, 24, 25].contains(&((w[1] - w[0]) / 3_600_000))), "{times:?}");

    let every = json!({ "cron": "* * * * * *", "inputs": { "label": "fast" } });
    let (_, fast) = app.call(Method::POST, &path, Some(&owner.token), Some(every)).await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/workspaces/{WS}/schedules/{}", fast["id"].as_str().unwrap()),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let fired = ticks(&app, &owner.token).await;
    assert!((2..=4).contains(&fired.len()), "{fired:?}");
    assert!(fired.windows(2).all(|w| w[1] - w[0] == 1000), "one run per second: {fired:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ticks(&app, &owner.token).await.len(), fired.len(), "deleted schedules stop");
    let (_, page) = app
        .call(Method::GET, &format!("/api/v1/workspaces/{WS}/runs?limit=1"), Some(&owner.token), None)
        .await;
    let done = app.wait_finished(&owner.token, page["runs"][0]["id"].as_str().unwrap()).await;
    assert_eq!(done["run"]["output"]["label"], "fast");
    app.finish().await;
}

/// A schedule whose next tick was an hour ago (no server ran), after one scheduler pass;
/// returns its next tick.
async fn missed(app: &TestApp, catch_up: &str) -> Option<Timestamp> {
    let now = app.executor.now();
    let hour_ago = Timestamp(now.0 - 3_600_000 - (now.0 % 60_000));
    let schedule = Schedule {
        id: uuid::Uuid::now_v7().to_string(),
        workspace_id: WS.into(),
        flow_name: "tick".into(),
        cron: "* * * * *".into(),
        timezone: "UTC".into(),
        catch_up: catch_up.into(),
        inputs: json!({}),
        next_fire_at: Some(hour_ago),
        created_by: "test".into(),
        created_at: hour_ago,
    };
    app.store.create_schedule(&schedule).await.unwrap();
    steward_server::scheduler::pass(&app.state).await.unwrap();
    let after =
        app.store.schedules(WS, None).await.unwrap().into_iter().find(|s| s.id == schedule.id).unwrap();
    after.next_fire_at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_missed_ticks_are_skipped_or_run_once() {
    let app = TestApp::new(Db::Sqlite).await;
    let owner = app.workspace(WS).await;
    app.apply(&owner.token, TICK_FLOW).await;
    let now = app.executor.now().0;

    let next = missed(&app, "skip").await;
    assert!(next.unwrap().0 > now, "moved past now");
    assert!(ticks(&app, &owner.token).await.is_empty(), "an hour of missed ticks, no burst");

    let next = missed(&app, "once").await;
    assert!(next.unwrap().0 > now);
    let fired = ticks(&app, &owner.token).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0] <= now && now - fired[0] < 60_000, "the latest missed minute: {fired:?} vs {now}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_fire_each_tick_exactly_once() {
    let first = TestApp::new(Db::Postgres).await;
    let second = first.beside().await;
    let owner = first.workspace(WS).await;
    first.apply(&owner.token, TICK_FLOW).await;
    let path = format!("/api/v1/workspaces/{WS}/flows/tick/schedules");
    let (_, s) =
        first.call(Method::POST, &path, Some(&owner.token), Some(json!({ "cron": "* * * * * *" }))).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let delete = format!("/api/v1/workspaces/{WS}/schedules/{}", s["id"].as_str().unwrap());
    assert_eq!(
        second.call(Method::DELETE, &delete, Some(&owner.token), None).await.0,
        StatusCode::NO_CONTENT
    );

    let fired = ticks(&first, &owner.token).await;
    let distinct: BTreeSet<_> = fired.iter().collect();
    assert_eq!(distinct.len(), fired.len(), "a tick ran twice: {fired:?}");
    assert!(fired.len() >= 18, "only {} ticks in 20 s: {fired:?}", fired.len());
    assert!(fired.windows(2).all(|w| w[1] - w[0] == 1000), "a tick was skipped: {fired:?}");
    second.finish().await;
    first.finish().await;
}
