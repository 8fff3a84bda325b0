use serde_json::json;

use super::*;
use crate::definition::load;

fn def(extra: &str) -> AgentDef {
    let text = format!("name: a\nmodel: {{provider: openai, name: m}}\n{extra}");
    load("a.yaml", &text).expect("valid")
}

fn begin() -> Record {
    Record::Begin {
        agent_version: "v1".into(),
        history: Vec::new(),
        task: "do it".into(),
        masked: Vec::new(),
    }
}

fn turn(text: &str, calls: &[(&str, &str)], tokens: u64) -> Record {
    Record::Turn {
        provider: Protocol::Openai,
        model: "m".into(),
        text: text.into(),
        tool_calls: calls
            .iter()
            .map(|(id, name)| ToolCall { id: (*id).into(), name: (*name).into(), arguments: json!({}) })
            .collect(),
        usage: Usage { input_tokens: tokens, output_tokens: tokens },
        cost_micros: Some(tokens * 10),
        fell_back: Vec::new(),
    }
}

fn tool(id: &str) -> Record {
    Record::Tool {
        call_id: id.into(),
        name: "t".into(),
        content: "ok".into(),
        is_error: false,
        masked: Vec::new(),
    }
}

fn none(_: &str) -> bool {
    false
}

#[test]
fn the_loop_calls_the_model_then_each_tool_then_the_model_again() {
    let d = def("");
    let mut records = vec![begin()];
    assert_eq!(next(&d, &none, &records), Next::Model { max_tokens: None });
    records.push(turn("", &[("c1", "a"), ("c2", "b")], 5));
    assert!(matches!(next(&d, &none, &records), Next::CallTool(c) if c.id == "c1"));
    records.push(tool("c1"));
    assert!(matches!(next(&d, &none, &records), Next::CallTool(c) if c.id == "c2"));
    records.push(tool("c2"));
    assert_eq!(next(&d, &none, &records), Next::Model { max_tokens: None });
    records.push(turn("all done", &[], 5));
    assert_eq!(next(&d, &none, &records), Next::Finish(json!("all done")));
}

#[test]
fn the_transcript_is_rebuilt_from_the_records_in_order() {
    let records = vec![begin(), turn("looking", &[("c1", "a")], 1), tool("c1"), turn("done", &[], 1)];
    let messages = transcript(&records);
    let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, vec![Role::User, Role::Assistant, Role::Tool, Role::Assistant]);
    assert_eq!(messages[0].content, "do it");
    assert_eq!(messages[1].tool_calls[0].id, "c1");
    assert_eq!(messages[2].tool_call_id.as_deref(), Some("c1"));
}

#[test]
fn approval_is_asked_then_awaited_then_the_decision_is_followed() {
    let d = def("");
    let needs = |name: &str| name == "send";
    let mut records = vec![begin(), turn("", &[("c1", "send")], 1)];
    assert!(matches!(next(&d, &needs, &records), Next::AskApproval(c) if c.id == "c1"));
    records.push(Record::ApprovalRequested {
        call_id: "c1".into(),
        name: "send".into(),
        arguments: json!({}),
    });
    assert_eq!(next(&d, &needs, &records), Next::AwaitDecision);
    let mut approved = records.clone();
    approved.push(Record::Decision { approved: true, by: "ann".into(), reason: None });
    assert!(matches!(next(&d, &needs, &approved), Next::CallTool(c) if c.id == "c1"));
    records.push(Record::Decision { approved: false, by: "bob".into(), reason: Some("too risky".into()) });
    match next(&d, &needs, &records) {
        Next::Record(Record::Tool { content, is_error: true, .. }) => {
            assert!(content.contains("rejected by bob: too risky"), "{content}")
        }
        other => panic!("expected a rejection record, got {other:?}"),
    }
}

#[test]
fn budgets_stop_the_loop_before_the_next_model_call() {
    let turns = def("limits: {max_turns: 2}\n");
    let records =
        vec![begin(), turn("", &[("c1", "a")], 1), tool("c1"), turn("", &[("c2", "a")], 1), tool("c2")];
    assert!(matches!(next(&turns, &none, &records), Next::OverBudget(m) if m.contains("2 of its turns")));
    let tokens = def("limits: {max_tokens: 100}\n");
    let records = vec![begin(), turn("", &[("c1", "a")], 30), tool("c1")];
    assert_eq!(
        next(&tokens, &none, &records),
        Next::Model { max_tokens: Some(40) },
        "the reply is capped to what is left"
    );
    let records = vec![begin(), turn("", &[("c1", "a")], 50), tool("c1")];
    assert!(
        matches!(next(&tokens, &none, &records), Next::OverBudget(m) if m.contains("100 tokens, its limit is 100"))
    );
    let cost = def("limits: {max_cost: 0.0005}\n");
    let records = vec![begin(), turn("", &[("c1", "a")], 50), tool("c1")];
    assert!(matches!(next(&cost, &none, &records), Next::OverBudget(m) if m.contains("limit is $0.0005")));
}

#[test]
fn an_answer_that_misses_the_schema_is_repaired_then_refused() {
    let d = def(
        "output: {schema: {type: object, required: [urgency], properties: {urgency: {enum: [low, high]}}}, repair_turns: 1}\n",
    );
    let mut records = vec![begin(), turn("```json\n{\"urgency\": \"soon\"}\n```", &[], 1)];
    let repair = next(&d, &none, &records);
    let Next::Record(r @ Record::Repair { .. }) = repair else { panic!("expected a repair, got {repair:?}") };
    records.push(r);
    assert_eq!(next(&d, &none, &records), Next::Model { max_tokens: None });
    let mut fixed = records.clone();
    fixed.push(turn("{\"urgency\": \"high\"}", &[], 1));
    assert_eq!(next(&d, &none, &fixed), Next::Finish(json!({"urgency": "high"})));
    records.push(turn("not json", &[], 1));
    assert!(matches!(next(&d, &none, &records), Next::BadAnswer(m) if m.contains("after 1 repair turns")));
}

#[test]
fn decisions_journaled_by_the_engine_read_as_records() {
    let values = vec![
        json!({"type": "decision", "approved": false, "by": "timeout", "reason": "late"}),
        json!({"type": "future"}),
    ];
    assert_eq!(
        Record::parse_all(&values),
        vec![Record::Decision { approved: false, by: "timeout".into(), reason: Some("late".into()) }]
    );
}
