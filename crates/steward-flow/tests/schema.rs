//! The JSON Schema printed by `steward schema flow` agrees with the loader: every example flow
//! validates against it, and files the loader refuses for their shape fail it too.

use std::path::Path;

use serde_json::Value;

fn schema() -> jsonschema::Validator {
    jsonschema::validator_for(&steward_flow::flow_schema()).expect("the schema itself is valid")
}

fn yaml_to_json(text: &str) -> Value {
    // The loader's own reader turns YAML into the JSON value the schema applies to.
    let loaded = steward_flow::load("x.yaml", text);
    assert!(loaded.is_ok(), "{:?}", loaded.err());
    value_of(text)
}

fn value_of(text: &str) -> Value {
    steward_flow::document_value(text).expect("parses")
}

#[test]
fn every_example_matches_the_schema() {
    let validator = schema();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("examples") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let value = yaml_to_json(&text);
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 6);
}

#[test]
fn shapes_the_loader_refuses_fail_the_schema() {
    let validator = schema();
    for bad in [
        "name: x\nsteps:\n  - id: a\n    htp: {url: x}\n",
        "name: x\nsteps:\n  - id: a\n    transform: '1'\n    code: 'x'\n",
        "name: x\nsteps:\n  - transform: '1'\n",
        "name: x\nsteps:\n  - id: a\n    transform: '1'\n    retry: {attempts: 0}\n",
        "name: Bad Name\nsteps: []\n",
        "steps: []\n",
        "name: x\nsteps:\n  - id: a\n    wait: {}\n",
        "name: x\nretention: { forever: 1d }\nsteps: [{ id: a, transform: '1' }]\n",
        "name: x\nretention: 30d\nsteps: [{ id: a, transform: '1' }]\n",
    ] {
        let value = value_of(bad);
        assert!(!validator.is_valid(&value), "the schema accepted: {bad}");
        assert!(steward_flow::load("x.yaml", bad).is_err(), "the loader accepted: {bad}");
    }
}

#[test]
fn a_retention_block_matches_the_schema() {
    let text = "name: x\nretention: { payloads: 7d, errors: 30d, metadata: 90d }\nsteps: [{ id: a, transform: '1' }]\n";
    assert!(schema().is_valid(&yaml_to_json(text)));
}
