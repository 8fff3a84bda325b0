//! The value expressions and code see: `inputs`, `vars`, `run`, `trigger`, `steps`, and inside
//! loops `item` and `index`, inside error handlers `error`.
//!
//! Steps are scoped: inside loop item `items[2].`, `.steps.x` is that item's `x`, falling back to
//! steps outside the loop.

use serde_json::{Map, Value, json};
use steward_engine::{BlockRole, RunState, StepState};

use crate::catalog::Compiled;

/// Builds the context for the step instance `key`.
pub fn for_step(compiled: &Compiled, state: &RunState, key: &str) -> Value {
    let prefix = steward_engine::split_key(key).map_or("", |(p, _)| p);
    let mut ctx = base(compiled, state);
    ctx.insert("steps".into(), Value::Object(scoped_steps(state, prefix)));
    if let Some((item, index)) = loop_item(state, prefix) {
        ctx.insert("item".into(), item);
        ctx.insert("index".into(), json!(index));
    }
    if let Some(error) = handled_error(compiled, state, key) {
        ctx.insert("error".into(), error);
    }
    Value::Object(ctx)
}

/// The context of the flow's `output` (top-level steps only).
pub fn for_output(compiled: &Compiled, state: &RunState) -> Value {
    let mut ctx = base(compiled, state);
    ctx.insert("steps".into(), Value::Object(scoped_steps(state, "")));
    Value::Object(ctx)
}

fn base(compiled: &Compiled, state: &RunState) -> Map<String, Value> {
    let mut ctx = Map::new();
    ctx.insert("inputs".into(), state.inputs.clone());
    ctx.insert(
        "run".into(),
        json!({
            "id": state.run_id,
            "flow": compiled.version.name,
            "version": compiled.version.version,
            "started_at": state.started_at.map(|t| t.millis()),
        }),
    );
    let trigger = state.trigger.clone().unwrap_or_else(|| json!({ "kind": "manual" }));
    ctx.insert("trigger".into(), trigger);
    let mut vars = Map::new();
    let vars_ctx = Value::Object(ctx.clone());
    for (name, t) in &compiled.flow.vars {
        // Vars read only inputs (checked when the flow loads), so this cannot fail on step data.
        vars.insert(name.clone(), t.render(&vars_ctx).unwrap_or(Value::Null));
    }
    ctx.insert("vars".into(), Value::Object(vars));
    ctx
}

fn step_view(s: &StepState) -> Value {
    let mut v = Map::new();
    v.insert("status".into(), json!(s.status.as_str()));
    v.insert("output".into(), s.output.clone().unwrap_or(Value::Null));
    if let Some(e) = &s.error {
        v.insert("error".into(), serde_json::to_value(e).unwrap_or(Value::Null));
    }
    Value::Object(v)
}

/// Steps visible from `prefix`: outer scopes first, inner scopes overriding them.
fn scoped_steps(state: &RunState, prefix: &str) -> Map<String, Value> {
    let mut scopes: Vec<&str> = vec![""];
    for (i, _) in prefix.match_indices("].") {
        scopes.push(&prefix[..i + 2]);
    }
    let mut out = Map::new();
    for scope in scopes {
        for (key, s) in state.steps.range(scope.to_owned()..) {
            let Some(rest) = key.strip_prefix(scope) else { break };
            if !rest.contains('.') {
                out.insert(rest.to_owned(), step_view(s));
            }
        }
    }
    out
}

/// The innermost loop item of a scope prefix such as `outer[1].inner[0].`.
fn loop_item(state: &RunState, prefix: &str) -> Option<(Value, usize)> {
    let scope = prefix.strip_suffix("].")?;
    let open = scope.rfind('[')?;
    let (loop_key, index) = (&scope[..open], scope[open + 1..].parse::<usize>().ok()?);
    let items = state.step(loop_key)?.items.as_ref()?;
    Some((items.get(index).cloned().unwrap_or(Value::Null), index))
}

/// For a step inside an `on_error` handler: the error being handled.
fn handled_error(compiled: &Compiled, state: &RunState, key: &str) -> Option<Value> {
    let (prefix, id) = steward_engine::split_key(key)?;
    let mut node = compiled.plan.find(&steward_flow::StepId::parse(id).ok()?)?;
    loop {
        let block = compiled.plan.node(node).block;
        let (owner, role) = compiled.plan.blocks[block].owner?;
        if role == BlockRole::Handler {
            let owner_key = format!("{prefix}{}", compiled.plan.node(owner).id);
            return state.step(&owner_key)?.error.as_ref().and_then(|e| serde_json::to_value(e).ok());
        }
        if role == BlockRole::Body {
            return None;
        }
        node = owner;
    }
}
