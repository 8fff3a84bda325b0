//! Budgets: turns, tokens and cost per run (from the run's records) and tokens and cost per
//! workspace and day or month (from the usage counters). A run over one fails with error kind
//! `budget`, and the call that would go over it is never sent.

use serde_json::json;
use steward_agent::pricing::{Price, PriceTable};
use steward_engine::{ErrorKind, RunStatus};
use steward_executor::agent::WorkspaceBudget;
use steward_store::{DEFAULT_WORKSPACE, RunRecord, UsageDelta};
use steward_testkit::model::{FakeProvider, Reply};

use super::common::{Harness, succeeded};
use super::{agent, definition, flow};

/// The message of a run that failed over a budget.
fn budget_error(run: &RunRecord) -> String {
    assert_eq!(run.status, RunStatus::Failed, "the run should fail: {:?}", run.output);
    let error = run.error.clone().unwrap();
    assert_eq!(error.kind, ErrorKind::Budget, "{}", error.message);
    error.message
}

/// Prices with the test model `m1` at one cent per token, in and out.
fn cent_a_token() -> PriceTable {
    let mut prices = PriceTable::defaults();
    prices.insert("openai/m1", Price::new(10_000.0, 10_000.0)).unwrap();
    prices
}

/// Today (UTC) as the usage counters name days.
fn today() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..10].to_owned()
}

#[tokio::test]
async fn a_run_budget_stops_the_loop_before_anything_over_it_is_sent() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "tools: [{builtin: current_time}]\nlimits: {max_tokens: 150}\n")).await;
    p.enqueue(Reply::tool_call("call_1", "current_time", json!({})).usage(100, 60));
    p.enqueue(Reply::text("never sent"));
    let run = h.run(&flow("go"), json!({})).await;
    let message = budget_error(&run);
    assert!(message.contains("160 tokens, its limit is 150"), "{message}");
    assert_eq!(p.count(), 1, "the second call was never sent");
}

#[tokio::test]
async fn a_run_token_budget_caps_each_reply_to_what_is_left() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    let limits = "tools: [{builtin: current_time}]\nlimits: {max_tokens: 1000}\n";
    agent(&h, &definition(&p, limits).replace("name: m1}", "name: m1, max_tokens: 700}")).await;
    p.enqueue(Reply::tool_call("call_1", "current_time", json!({})).usage(400, 200));
    p.enqueue(Reply::text("done").usage(300, 50));
    let run = h.run(&flow("go"), json!({})).await;
    assert_eq!(succeeded(&run), &json!("done"));
    let seen = p.requests();
    assert_eq!(seen[0].body["max_tokens"], json!(700), "the definition's cap is below what is left");
    assert_eq!(seen[1].body["max_tokens"], json!(400), "1000 tokens less the 600 used");
}

#[tokio::test]
async fn a_run_turn_budget_stops_a_model_that_never_answers() {
    let h = Harness::sqlite().await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "tools: [{builtin: current_time}]\nlimits: {max_turns: 2}\n")).await;
    p.enqueue(Reply::tool_call("call_1", "current_time", json!({})));
    p.enqueue(Reply::tool_call("call_2", "current_time", json!({})));
    p.enqueue(Reply::text("never sent"));
    let run = h.run(&flow("go"), json!({})).await;
    let message = budget_error(&run);
    assert!(message.contains("used all 2 of its turns"), "{message}");
    assert_eq!(p.count(), 2, "no third call");
    assert_eq!(p.pending(), 1);
}

#[tokio::test]
async fn a_run_cost_budget_counts_at_the_configured_prices() {
    let h = Harness::sqlite_with(|_, o| o.prices = cent_a_token()).await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "tools: [{builtin: current_time}]\nlimits: {max_cost: 0.5}\n")).await;
    // 50 tokens at a cent each: the whole budget.
    p.enqueue(Reply::tool_call("call_1", "current_time", json!({})).usage(30, 20));
    p.enqueue(Reply::text("never sent"));
    let run = h.run(&flow("go"), json!({})).await;
    let message = budget_error(&run);
    assert!(message.contains("the run cost $0.5000, its limit is $0.5"), "{message}");
    assert_eq!(p.count(), 1, "the second call was never sent");
}

#[tokio::test]
async fn a_workspace_token_budget_used_up_today_sends_nothing() {
    let budget = WorkspaceBudget { daily_tokens: Some(1_000), ..WorkspaceBudget::default() };
    let h = Harness::sqlite_with(|_, o| o.agent_budget = budget).await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "")).await;
    let earlier = UsageDelta {
        workspace: DEFAULT_WORKSPACE.into(),
        day: today(),
        agent: "another".into(),
        input_tokens: 700,
        output_tokens: 300,
        model_calls: 3,
        ..UsageDelta::default()
    };
    h.store.add_usage(&earlier).await.unwrap();
    p.enqueue(Reply::text("never sent"));
    let run = h.run(&flow("go"), json!({})).await;
    let message = budget_error(&run);
    assert!(message.contains("daily token budget is used up (1000 of 1000)"), "{message}");
    assert_eq!(p.count(), 0, "nothing was sent");
}

#[tokio::test]
async fn usage_from_earlier_days_counts_against_the_monthly_budget_only() {
    let budget = WorkspaceBudget {
        daily_tokens: Some(1_000),
        monthly_tokens: Some(5_000),
        ..WorkspaceBudget::default()
    };
    let h = Harness::sqlite_with(|_, o| o.agent_budget = budget).await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "")).await;
    let today = today();
    // The first of the month is an earlier day of this month unless today is the first.
    let first = format!("{}-01", &today[..7]);
    let earlier = UsageDelta {
        workspace: DEFAULT_WORKSPACE.into(),
        day: first.clone(),
        agent: "helper".into(),
        input_tokens: 4_000,
        output_tokens: 500,
        ..UsageDelta::default()
    };
    h.store.add_usage(&earlier).await.unwrap();
    p.enqueue(Reply::text("within budget").usage(400, 100));
    p.enqueue(Reply::text("never sent"));
    let run = h.run(&flow("go"), json!({})).await;
    if first == today {
        // No earlier day this month: the usage is today's, over the daily budget.
        assert!(budget_error(&run).contains("daily token budget"));
        return;
    }
    assert_eq!(succeeded(&run), &json!("within budget"), "the day's budget is untouched");
    let run = h.run(&flow("go"), json!({})).await;
    let message = budget_error(&run);
    assert!(message.contains("monthly token budget is used up (5000 of 5000)"), "{message}");
    assert_eq!(p.count(), 1, "the second run sent nothing");
}

#[tokio::test]
async fn a_workspace_cost_budget_used_up_by_one_run_stops_the_next() {
    let h = Harness::sqlite_with(|_, o| {
        o.prices = cent_a_token();
        o.agent_budget = WorkspaceBudget { daily_cost: Some(0.5), ..WorkspaceBudget::default() };
    })
    .await;
    let p = FakeProvider::start().await;
    agent(&h, &definition(&p, "")).await;
    p.enqueue(Reply::text("first").usage(30, 20));
    p.enqueue(Reply::text("never sent"));
    let first = h.run(&flow("go"), json!({})).await;
    assert_eq!(succeeded(&first), &json!("first"));
    let usage = h.store.usage(DEFAULT_WORKSPACE, "2000-01-01", "2999-12-31").await.unwrap();
    assert_eq!(usage[0].cost_micros, 500_000, "the first run's cost is counted");
    let second = h.run(&flow("go"), json!({})).await;
    let message = budget_error(&second);
    assert!(message.contains("daily cost budget is used up ($0.5 of $0.5)"), "{message}");
    assert_eq!(p.count(), 1, "the second run sent nothing");
    assert_eq!(p.pending(), 1);
}
