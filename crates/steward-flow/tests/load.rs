//! Loading flow files: valid files produce the model; invalid ones name file, line, column and
//! the problem. Messages are snapshot-tested because they are part of the user interface.

use steward_flow::{OnError, StepKind, WaitStep, load};

fn errors(text: &str) -> String {
    load("flow.yaml", text).map(|_| "loaded without errors".to_owned()).unwrap_or_else(|e| e.to_string())
}

const SKETCH: &str = r#"
name: enrich-signup
inputs: { email: { type: string } }
steps:
  - id: lookup
    http: { method: GET, url: "https://api.example.com/people?email=${{ .inputs.email }}" }
    retry: { attempts: 5, backoff: exponential, initial: 500ms, max: 30s }
    timeout: 10s
  - id: score
    transform: '{ email: .inputs.email, score: (.steps.lookup.output.body.followers // 0) }'
  - id: vip
    if: ${{ .steps.score.output.score > 1000 }}
    code: |
      export default ({ steps }) => ({ tier: "vip", name: steps.lookup.output.body.name })
output: ${{ .steps.score.output }}
"#;

#[test]
fn the_sketch_loads() {
    let loaded = load("sketch.yaml", SKETCH).expect("valid");
    let flow = loaded.flow;
    assert_eq!(flow.name.as_str(), "enrich-signup");
    assert_eq!(flow.steps.len(), 3);
    assert_eq!(flow.steps[0].retry.attempts, 5);
    assert_eq!(flow.steps[0].timeout.map(|d| d.as_millis()), Some(10_000));
    assert!(matches!(flow.steps[1].kind, StepKind::Transform(_)));
    assert!(flow.steps[2].guard.is_some());
}

#[test]
fn nested_blocks_load() {
    let text = r#"
name: nested
steps:
  - id: items
    for_each:
      items: ${{ [1, 2, 3] }}
      parallelism: 2
      steps:
        - id: double
          transform: .item * 2
  - id: pick
    switch:
      value: ${{ .steps.items.output | length }}
      cases:
        "3": [{ id: three, transform: '"three"' }]
      default: [{ id: other, transform: '"other"' }]
  - id: pause
    wait: 1s
  - id: risky
    transform: error("boom")
    on_error:
      steps:
        - id: recover
          transform: .error.message
  - id: until
    wait: { until: "${{ .steps.pause.output.waited_until }}" }
"#;
    let flow = load("n.yaml", text).expect("valid").flow;
    assert!(matches!(&flow.steps[0].kind, StepKind::ForEach(f) if f.parallelism == 2 && f.steps.len() == 1));
    assert!(matches!(&flow.steps[1].kind, StepKind::Switch(s) if s.cases.len() == 1 && s.default.len() == 1));
    assert!(matches!(&flow.steps[3].on_error, OnError::Handle(h) if h.len() == 1));
    assert!(matches!(&flow.steps[4].kind, StepKind::Wait(WaitStep::Until(_))));
}

#[test]
fn json_files_load_too() {
    let text = r#"{"name": "j", "steps": [{"id": "a", "transform": "1"}]}"#;
    assert_eq!(load("f.json", text).expect("valid").flow.steps.len(), 1);
}

#[test]
fn malformed_yaml() {
    insta::assert_snapshot!(errors("name: x\nsteps:\n  - id: a\n    transform: [1, 2\n"));
}

#[test]
fn unknown_keys_and_kinds() {
    insta::assert_snapshot!(errors(
        "name: x\nsteeps: []\nsteps:\n  - id: a\n    htp: { url: x }\n  - id: b\n    transform: '.'\n    retries: 3\n"
    ));
}

#[test]
fn step_without_kind_and_with_two_kinds() {
    insta::assert_snapshot!(errors(
        "name: x\nsteps:\n  - id: a\n  - id: b\n    transform: '.'\n    code: 'export default () => 1'\n"
    ));
}

#[test]
fn duplicate_ids() {
    insta::assert_snapshot!(errors(
        "name: x\nsteps:\n  - id: a\n    transform: '1'\n  - id: loop\n    for_each:\n      items: '${{ [1] }}'\n      steps:\n        - id: a\n          transform: '2'\n"
    ));
}

#[test]
fn references_to_steps_that_cannot_have_run() {
    insta::assert_snapshot!(errors(
        r#"name: x
steps:
  - id: a
    transform: .steps.b.output
  - id: b
    transform: '1'
  - id: c
    needs: []
    http: { url: "https://x.test/${{ .steps.a.output }}" }
  - id: d
    transform: .steps.nope.output
"#
    ));
}

#[test]
fn cycles_and_bad_needs() {
    insta::assert_snapshot!(errors(
        "name: x\nsteps:\n  - id: a\n    needs: [c]\n    transform: '1'\n  - id: b\n    needs: [a]\n    transform: '1'\n  - id: c\n    needs: [b, zz]\n    transform: '1'\n"
    ));
}

#[test]
fn invalid_jq() {
    insta::assert_snapshot!(errors(
        "name: x\nsteps:\n  - id: a\n    transform: '.a | | .b'\n  - id: b\n    if: ${{ .x | frob }}\n    transform: '1'\n  - id: c\n    http: { url: 'https://x/${{ now }}' }\n"
    ));
}

#[test]
fn invalid_durations_and_retry() {
    insta::assert_snapshot!(errors(
        "name: x\nsteps:\n  - id: a\n    transform: '1'\n    timeout: 10\n  - id: b\n    transform: '1'\n    retry: { attempts: 0 }\n  - id: c\n    wait: soon\n  - id: d\n    transform: '1'\n    retry: { attempts: 3, initial: 1m, max: 1s }\n"
    ));
}

#[test]
fn bad_names_and_missing_fields() {
    insta::assert_snapshot!(errors(
        "name: My Flow\nsteps:\n  - id: fetch-user\n    http: { method: FETCH }\n  - transform: '1'\n"
    ));
}

#[test]
fn vars_cannot_read_steps_and_output_can() {
    insta::assert_snapshot!(errors(
        "name: x\nvars: { v: '${{ .steps.a.output }}' }\nsteps:\n  - id: a\n    transform: '1'\noutput: '${{ .steps.a.output + .steps.b.output }}'\n"
    ));
}

#[test]
fn loop_body_steps_are_read_through_the_loop() {
    insta::assert_snapshot!(errors(
        "name: x\nsteps:\n  - id: each\n    for_each:\n      items: '${{ [1] }}'\n      steps: [{ id: inner, transform: '.item' }]\n  - id: after\n    transform: .steps.inner.output\n"
    ));
}

#[test]
fn a_retention_block_sets_the_flows_own_periods() {
    let text = "name: x\nretention: { payloads: 7d, errors: 30d, metadata: 90d }\nsteps: [{ id: a, transform: '1' }]\n";
    let flow = load("flow.yaml", text).expect("valid").flow;
    let r = flow.retention.expect("a retention block");
    let day = 86_400_000;
    assert_eq!(r.payloads.map(|d| d.as_millis()), Some(7 * day));
    assert_eq!(r.errors.map(|d| d.as_millis()), Some(30 * day));
    assert_eq!(r.metadata.map(|d| d.as_millis()), Some(90 * day));
    let partial = "name: x\nretention: { payloads: 12h }\nsteps: [{ id: a, transform: '1' }]\n";
    let r = load("flow.yaml", partial).expect("valid").flow.retention.expect("block");
    assert_eq!((r.payloads.map(|d| d.as_millis()), r.errors, r.metadata), (Some(day / 2), None, None));
    let none = "name: x\nsteps: [{ id: a, transform: '1' }]\n";
    assert_eq!(load("flow.yaml", none).expect("valid").flow.retention, None);
}

#[test]
fn invalid_retention() {
    let unit = errors("name: x\nretention:\n  payloads: 7\nsteps: [{ id: a, transform: '1' }]\n");
    let unknown =
        errors("name: x\nretention:\n  payloads: 7d\n  forever: true\nsteps: [{ id: a, transform: '1' }]\n");
    let longer =
        errors("name: y\nretention: { payloads: 400d, metadata: 90d }\nsteps: [{ id: a, transform: '1' }]\n");
    insta::assert_snapshot!(format!("{unit}\n{unknown}\n{longer}"));
}
