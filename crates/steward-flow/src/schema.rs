//! The JSON Schema of flow files (`steward schema flow`), for editors and linters.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

use crate::model::{
    AgentStep, ApprovalStep, CallStep, FlowRetention, HttpStep, InputSpec, Retain, RetryPolicy,
};

/// The JSON Schema (draft 2020-12) that flow files follow.
pub fn flow_schema() -> Value {
    let mut g = SchemaGenerator::default();
    let step_ref = json!({"$ref": "#/$defs/Step"});
    let steps = json!({"type": "array", "items": step_ref});
    let kinds = [
        ("http", g.subschema_for::<HttpStep>().to_value()),
        (
            "transform",
            json!({"type": "string", "description": "A jq program; its output is the step's output."}),
        ),
        (
            "code",
            json!({"anyOf": [
                {"type": "string", "description": "An ES module whose default export receives the context."},
                {"type": "object", "additionalProperties": false, "required": ["source"],
                 "properties": {"source": {"type": "string"}, "memory_mb": {"type": "integer", "minimum": 1, "maximum": 4096}}}
            ]}),
        ),
        (
            "branch",
            json!({"type": "object", "additionalProperties": false, "required": ["if", "then"],
            "properties": {"if": condition(), "then": steps, "else": steps}}),
        ),
        (
            "switch",
            json!({"type": "object", "additionalProperties": false, "required": ["value", "cases"],
            "properties": {"value": {}, "cases": {"type": "object", "additionalProperties": steps}, "default": steps}}),
        ),
        (
            "for_each",
            json!({"type": "object", "additionalProperties": false, "required": ["items", "steps"],
            "properties": {"items": {}, "parallelism": {"type": "integer", "minimum": 1}, "steps": steps}}),
        ),
        (
            "wait",
            json!({"anyOf": [duration(),
                {"type": "object", "additionalProperties": false, "required": ["for"], "properties": {"for": duration()}},
                {"type": "object", "additionalProperties": false, "required": ["until"], "properties": {"until": {}}}]}),
        ),
        ("approval", json!({"anyOf": [{"type": "null"}, g.subschema_for::<ApprovalStep>().to_value()]})),
        ("flow", g.subschema_for::<CallStep>().to_value()),
        ("agent", g.subschema_for::<AgentStep>().to_value()),
    ];
    let common = json!({
        "id": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 64},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "needs": {"type": "array", "items": {"type": "string"}},
        "if": condition(),
        "retry": g.subschema_for::<RetryPolicy>().to_value(),
        "timeout": duration(),
        "on_error": {"anyOf": [{"enum": ["fail", "continue"]},
            {"type": "object", "additionalProperties": false, "required": ["steps"], "properties": {"steps": steps}}]},
        "retain": g.subschema_for::<Retain>().to_value(),
    });
    let one_of: Vec<Value> = kinds
        .iter()
        .map(|(k, schema)| {
            let mut props = common.clone();
            props[*k] = schema.clone();
            json!({"type": "object", "required": ["id", k], "additionalProperties": false, "properties": props})
        })
        .collect();
    let mut root: Schema = json_schema!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Steward flow",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "steps"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$", "maxLength": 100},
            "description": {"type": "string"},
            "inputs": {"type": "object", "additionalProperties": g.subschema_for::<InputSpec>().to_value()},
            "vars": {"type": "object"},
            "concurrency": {"type": "integer", "minimum": 1},
            "retain": g.subschema_for::<Retain>().to_value(),
            "retention": g.subschema_for::<FlowRetention>().to_value(),
            "steps": steps,
            "output": {}
        }
    });
    let mut defs = g.take_definitions(true);
    defs.insert("Step".into(), json!({"oneOf": one_of}));
    root.insert("$defs".into(), Value::Object(defs));
    root.to_value()
}

fn condition() -> Value {
    json!({"anyOf": [{"type": "string", "description": "A jq expression, bare or in ${{ }}."}, {"type": "boolean"}]})
}

fn duration() -> Value {
    let mut g = SchemaGenerator::default();
    crate::duration::Duration::json_schema(&mut g).to_value()
}
