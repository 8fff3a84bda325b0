//! The value expressions and code see: `inputs`, `vars`, `run`, `trigger`, `steps`, and inside
//! loops `item` and `index`, inside error handlers `error`.
//!
//! Steps are scoped: inside loop item `items[2].`, `.steps.x` is that item's `x`, falling back to
//! steps outside the loop.
//!
//! A driver keeps one [`Contexts`] per run. `inputs`, `run`, `trigger` and `vars` are computed
//! once; each step's view (`status`, `output`, `error`) is converted to jq values once per
//! change, and the top-level `steps` object is updated in place. A step's context then shares
//! all of that instead of copying every earlier output, so building it does not grow with the
//! run.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};
use steward_engine::{BlockRole, RunState, StepState};
use steward_flow::{Context, Object};

use crate::catalog::Compiled;

/// The contexts of one run's steps, kept up to date as its steps change.
#[derive(Debug)]
pub(crate) struct Contexts {
    /// `inputs`, `run`, `trigger` and `vars`, in that order.
    base: Object,
    /// The view of every top-level step, by key in key order.
    top: Object,
    /// The view of every step instance.
    views: HashMap<String, Context>,
    /// Steps whose view is out of date.
    stale: BTreeSet<String>,
}

impl Contexts {
    /// The contexts of the run in `state`, which has started.
    pub(crate) fn new(compiled: &Compiled, state: &RunState) -> Self {
        let mut contexts = Self {
            base: base(compiled, state),
            top: Object::default(),
            views: HashMap::new(),
            stale: state.steps.keys().cloned().collect(),
        };
        contexts.refresh(state);
        contexts
    }

    /// Step `key` changed; its view is rebuilt before the next context is handed out.
    pub(crate) fn changed(&mut self, key: &str) {
        if !self.stale.contains(key) {
            self.stale.insert(key.to_owned());
        }
    }

    /// The context for the step instance `key`.
    pub(crate) fn for_step(&mut self, compiled: &Compiled, state: &RunState, key: &str) -> Context {
        self.refresh(state);
        let prefix = steward_engine::split_key(key).map_or("", |(p, _)| p);
        let mut ctx = self.base.clone();
        ctx.insert("steps", self.scoped_steps(state, prefix));
        if let Some((item, index)) = loop_item(state, prefix) {
            ctx.insert("item", Context::from_json(&item));
            ctx.insert("index", Context::from_json(&json!(index)));
        }
        if let Some(error) = handled_error(compiled, state, key) {
            ctx.insert("error", Context::from_json(&error));
        }
        ctx.into()
    }

    /// The context of the flow's `output` (top-level steps only).
    pub(crate) fn for_output(&mut self, state: &RunState) -> Context {
        self.refresh(state);
        let mut ctx = self.base.clone();
        ctx.insert("steps", self.top.clone().into());
        ctx.into()
    }

    fn refresh(&mut self, state: &RunState) {
        for key in std::mem::take(&mut self.stale) {
            let Some(step) = state.step(&key) else { continue };
            let view = step_view(step);
            if !key.contains('.') {
                self.top.insert_sorted(&key, view.clone());
            }
            self.views.insert(key, view);
        }
    }

    /// Steps visible from `prefix`: outer scopes first, inner scopes overriding them.
    fn scoped_steps(&self, state: &RunState, prefix: &str) -> Context {
        let mut out = self.top.clone();
        for (i, _) in prefix.match_indices("].") {
            let scope = &prefix[..i + 2];
            for (key, _) in state.steps.range(scope.to_owned()..) {
                let Some(rest) = key.strip_prefix(scope) else { break };
                if !rest.contains('.')
                    && let Some(view) = self.views.get(key)
                {
                    out.insert(rest, view.clone());
                }
            }
        }
        out.into()
    }
}

/// `inputs`, `run`, `trigger` and `vars`. Vars read only inputs (checked when the flow loads),
/// so they are computed once per run and cannot fail on step data.
fn base(compiled: &Compiled, state: &RunState) -> Object {
    let mut ctx = Object::default();
    ctx.insert("inputs", Context::from_json(&state.inputs));
    let run = json!({
        "id": state.run_id,
        "flow": compiled.version.name,
        "version": compiled.version.version,
        "started_at": state.started_at.map(|t| t.millis()),
    });
    ctx.insert("run", Context::from_json(&run));
    let manual = || json!({ "kind": "manual" });
    ctx.insert("trigger", Context::from_json(&state.trigger.clone().unwrap_or_else(manual)));
    let vars_ctx = Context::from(ctx.clone());
    let mut vars = Object::default();
    for (name, t) in &compiled.flow.vars {
        let value = t.render_in(&vars_ctx).unwrap_or(Value::Null);
        vars.insert(name, Context::from_json(&value));
    }
    ctx.insert("vars", vars.into());
    ctx
}

fn step_view(s: &StepState) -> Context {
    let mut v = Object::default();
    v.insert("status", Context::string(s.status.as_str()));
    v.insert("output", s.output.as_ref().map_or_else(Context::null, Context::from_json));
    if let Some(e) = &s.error {
        v.insert("error", Context::from_json(&serde_json::to_value(e).unwrap_or(Value::Null)));
    }
    v.into()
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use steward_engine::{Engine, Outcome, Timestamp};
    use steward_store::FlowVersion;

    use super::*;

    fn compiled(yaml: &str) -> Compiled {
        Compiled::new(FlowVersion {
            id: "v1".into(),
            workspace: "default".into(),
            flow_id: "f1".into(),
            name: "t".into(),
            version: 3,
            file_name: "t.yaml".into(),
            source: yaml.into(),
            digest: "d".into(),
            concurrency: None,
            created_at: Timestamp(0),
        })
        .expect("compiles")
    }

    /// Runs `key` to `outcome`, telling `contexts` about every event.
    fn step(c: &Compiled, state: &mut RunState, contexts: &mut Contexts, key: &str, outcome: Outcome) {
        let engine = Engine::new(&c.plan);
        let work = engine.ready(state).into_iter().find(|w| w.key == key).expect("ready");
        let mut events = engine.begin(state, &work, Timestamp(2));
        events.extend(engine.outcome(state, key, outcome, Timestamp(3)));
        events.iter().filter_map(|e| e.key()).for_each(|k| contexts.changed(k));
    }

    fn start(c: &Compiled, inputs: Value) -> RunState {
        let mut state = RunState::default();
        Engine::new(&c.plan).start(&mut state, "run-1", inputs, Timestamp(1));
        state
    }

    #[test]
    fn a_step_sees_inputs_run_vars_and_earlier_steps_in_key_order() {
        let c = compiled(
            "name: t\nvars:\n  greeting: 'hi ${{ .inputs.who }}'\nsteps:\n  - {id: s2, transform: '2'}\n  - {id: s10, transform: '10'}\n  - {id: s1, transform: '.'}\n",
        );
        let mut state = start(&c, json!({"who": "ann"}));
        let mut contexts = Contexts::new(&c, &state);
        step(&c, &mut state, &mut contexts, "s2", Outcome::Succeeded(json!(2)));
        step(&c, &mut state, &mut contexts, "s10", Outcome::Succeeded(json!({"n": 10})));
        let ctx = contexts.for_step(&c, &state, "s1").to_json();
        let expected = json!({
            "inputs": {"who": "ann"},
            "run": {"id": "run-1", "flow": "t", "version": 3, "started_at": 1},
            "trigger": {"kind": "manual"},
            "vars": {"greeting": "hi ann"},
            "steps": {
                "s1": {"status": "scheduled", "output": null},
                "s10": {"status": "succeeded", "output": {"n": 10}},
                "s2": {"status": "succeeded", "output": 2},
            },
        });
        assert_eq!(ctx.to_string(), expected.to_string(), "same values in the same key order");
    }

    #[test]
    fn views_follow_changes_and_handed_out_contexts_do_not() {
        let c = compiled("name: t\nsteps:\n  - {id: a, transform: '1'}\n  - {id: b, transform: '2'}\n");
        let mut state = start(&c, json!({}));
        let mut contexts = Contexts::new(&c, &state);
        let before = contexts.for_step(&c, &state, "a");
        step(&c, &mut state, &mut contexts, "a", Outcome::Succeeded(json!("A")));
        assert_eq!(before.to_json()["steps"], json!({"a": {"status": "scheduled", "output": null}}));
        let after = contexts.for_step(&c, &state, "b").to_json();
        assert_eq!(after["steps"]["a"], json!({"status": "succeeded", "output": "A"}));
        assert_eq!(contexts.for_output(&state).to_json()["steps"]["b"]["status"], json!("scheduled"));
    }

    #[test]
    fn loop_items_see_their_own_steps_over_outer_ones_and_their_item() {
        let c = compiled(
            "name: t\nsteps:\n  - {id: z, transform: '0'}\n  - id: each\n    for_each:\n      items: '${{ [10, 20] }}'\n      parallelism: 2\n      steps:\n        - {id: x, transform: '1'}\n        - {id: y, transform: '.steps.x.output'}\n",
        );
        let mut state = start(&c, json!({}));
        let mut contexts = Contexts::new(&c, &state);
        step(&c, &mut state, &mut contexts, "z", Outcome::Succeeded(json!(0)));
        step(&c, &mut state, &mut contexts, "each", Outcome::Items(vec![json!(10), json!(20)]));
        step(&c, &mut state, &mut contexts, "each[1].x", Outcome::Succeeded(json!("x1")));
        let ctx = contexts.for_step(&c, &state, "each[1].y").to_json();
        let steps: Vec<&String> = ctx["steps"].as_object().expect("steps").keys().collect();
        assert_eq!(steps, ["each", "z", "x", "y"], "outer steps first, then the item's");
        assert_eq!(ctx["steps"]["x"]["output"], json!("x1"));
        assert_eq!((ctx["item"].clone(), ctx["index"].clone()), (json!(20), json!(1)));
    }

    #[test]
    fn handler_steps_see_the_error_they_handle() {
        let c = compiled(
            "name: t\nsteps:\n  - id: a\n    transform: '1'\n    on_error:\n      steps:\n        - {id: fix, transform: '.error.kind'}\n",
        );
        let mut state = start(&c, json!({}));
        let mut contexts = Contexts::new(&c, &state);
        let error = steward_engine::StepError::new(steward_engine::ErrorKind::Network, "down");
        step(&c, &mut state, &mut contexts, "a", Outcome::Failed(error));
        let ctx = contexts.for_step(&c, &state, "fix").to_json();
        assert_eq!(ctx["error"]["kind"], json!("network"));
        assert_eq!(ctx["steps"]["a"]["status"], json!("handling"));
    }
}
