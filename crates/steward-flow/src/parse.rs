//! Turns a document tree into the typed flow model, reporting every problem with its path.
//! Leaf shapes (an http request, a retry policy) are read with serde; the step list and the
//! step-kind dispatch are read by hand so that errors can say exactly what is wrong.

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::diagnostic::{Sink, suggest};
use crate::duration::Duration;
use crate::model::*;
use crate::names::{FlowName, StepId};
use crate::path::Path;
use crate::template::{Condition, Template};

const FLOW_KEYS: &[&str] =
    &["name", "description", "inputs", "vars", "concurrency", "retain", "retention", "steps", "output"];
const STEP_KEYS: &[&str] =
    &["id", "name", "description", "needs", "if", "retry", "timeout", "on_error", "retain"];

pub(crate) struct Reader<'s, 'l> {
    pub(crate) sink: &'s mut Sink<'l>,
}

impl Reader<'_, '_> {
    pub(crate) fn flow(&mut self, doc: &Value) -> Option<Flow> {
        let root = Path::root();
        let map = self.mapping(doc, &root, "a flow")?;
        self.unknown_keys(map, &root, FLOW_KEYS, "flow");
        let name = match map.get("name") {
            Some(v) => self.leaf::<FlowName>(v, &root.key("name")),
            None => {
                self.sink.at_value(&root, "the flow has no `name`; add for example `name: my-flow`");
                None
            }
        };
        let steps = match map.get("steps") {
            Some(v) => self.steps(v, &root.key("steps")),
            None => {
                self.sink.at_value(&root, "the flow has no `steps`; add a list of steps");
                None
            }
        };
        let flow = Flow {
            name: name?,
            description: self.opt(map, "description", &root).flatten(),
            inputs: self
                .opt::<IndexMap<String, InputSpec>>(map, "inputs", &root)
                .flatten()
                .unwrap_or_default(),
            vars: self.opt::<IndexMap<String, Template>>(map, "vars", &root).flatten().unwrap_or_default(),
            concurrency: self.concurrency(map, &root),
            retain: self.opt(map, "retain", &root).flatten().unwrap_or_default(),
            retention: self.retention(map, &root)?,
            steps: steps?,
            output: self.opt(map, "output", &root).flatten(),
        };
        Some(flow)
    }

    /// The flow's `retention:` block: `Some(None)` when absent, `None` when invalid. A run's
    /// payloads and errors are deleted with its metadata, so they cannot be kept longer.
    fn retention(&mut self, map: &Map<String, Value>, root: &Path) -> Option<Option<FlowRetention>> {
        let r: FlowRetention = match self.opt(map, "retention", root)? {
            Some(r) => r,
            None => return Some(None),
        };
        if let Some(metadata) = r.metadata {
            for (key, kept) in [("payloads", r.payloads), ("errors", r.errors)] {
                if let Some(kept) = kept.filter(|k| *k > metadata) {
                    self.sink.at_value(
                        &root.key("retention").key(key),
                        format!(
                            "`{key}` ({}) is longer than `metadata` ({}); a run's {key} are deleted with \
                             the run, so they cannot be kept longer",
                            in_days(kept),
                            in_days(metadata)
                        ),
                    );
                    return None;
                }
            }
        }
        Some(Some(r))
    }

    fn concurrency(&mut self, map: &Map<String, Value>, root: &Path) -> Option<u32> {
        let n: u32 = self.opt(map, "concurrency", root).flatten()?;
        if n == 0 {
            self.sink.at_value(&root.key("concurrency"), "`concurrency` must be at least 1");
            return None;
        }
        Some(n)
    }

    fn steps(&mut self, value: &Value, path: &Path) -> Option<Vec<Step>> {
        let Value::Array(items) = value else {
            self.sink.at_value(path, format!("expected a list of steps, found {}", describe(value)));
            return None;
        };
        let steps: Vec<Option<Step>> =
            items.iter().enumerate().map(|(i, v)| self.step(v, &path.index(i))).collect();
        steps.into_iter().collect()
    }

    fn step(&mut self, value: &Value, path: &Path) -> Option<Step> {
        let map = self.mapping(value, path, "a step")?;
        let id = match map.get("id") {
            Some(v) => self.leaf::<StepId>(v, &path.key("id")),
            None => {
                self.sink
                    .at_value(path, "the step has no `id`; every step needs one, for example `id: fetch`");
                None
            }
        };
        let kind = self.kind(map, path);
        let needs = self.opt::<Vec<StepId>>(map, "needs", path).flatten();
        let guard = self.opt::<Condition>(map, "if", path).flatten();
        let retry = self.retry(map, path);
        let timeout = self.opt::<Duration>(map, "timeout", path).flatten();
        let on_error = self.on_error(map, path);
        let retain = self.opt::<Retain>(map, "retain", path).flatten();
        let name = self.opt::<String>(map, "name", path).flatten();
        Some(Step {
            id: id?,
            path: path.clone(),
            name,
            needs,
            guard,
            retry: retry?,
            timeout,
            on_error: on_error?,
            retain,
            kind: kind?,
        })
    }

    fn kind(&mut self, map: &Map<String, Value>, path: &Path) -> Option<StepKind> {
        let kinds: Vec<&str> = map.keys().map(String::as_str).filter(|k| STEP_KINDS.contains(k)).collect();
        let unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !STEP_KINDS.contains(k) && !STEP_KEYS.contains(k))
            .collect();
        for key in &unknown {
            let hint = match suggest(key, &[STEP_KINDS, STEP_KEYS].concat()) {
                Some(s) => format!("; did you mean `{s}`?"),
                None if kinds.is_empty() => format!("; step kinds are: {}", STEP_KINDS.join(", ")),
                None => format!("; step settings are: {}", STEP_KEYS.join(", ")),
            };
            let what = if kinds.is_empty() { "unknown step kind" } else { "unknown key" };
            self.sink.at_key(&path.key(key), format!("{what} `{key}`{hint}"));
        }
        match kinds.as_slice() {
            [kind] => self.kind_body(kind, &map[*kind], &path.key(kind)),
            [] => {
                if unknown.is_empty() {
                    self.sink.at_value(
                        path,
                        format!("the step does nothing; give it one of: {}", STEP_KINDS.join(", ")),
                    );
                }
                None
            }
            [_, second, ..] => {
                self.sink.at_key(
                    &path.key(second),
                    format!(
                        "a step has exactly one kind, but this one has {}; split it into several steps",
                        kinds.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" and ")
                    ),
                );
                None
            }
        }
    }

    fn kind_body(&mut self, kind: &str, v: &Value, path: &Path) -> Option<StepKind> {
        Some(match kind {
            "http" => StepKind::Http(Box::new(self.http(v, path)?)),
            "transform" => StepKind::Transform(self.transform(v, path)?),
            "code" => StepKind::Code(self.code(v, path)?),
            "branch" => StepKind::Branch(self.branch(v, path)?),
            "switch" => StepKind::Switch(self.switch(v, path)?),
            "for_each" => StepKind::ForEach(self.for_each(v, path)?),
            "wait" => StepKind::Wait(self.wait(v, path)?),
            "approval" if v.is_null() => StepKind::Approval(ApprovalStep::default()),
            "approval" => StepKind::Approval(self.leaf(v, path)?),
            "flow" => StepKind::Flow(self.call(v, path)?),
            "agent" => StepKind::Agent(self.leaf(v, path)?),
            _ => return None,
        })
    }

    fn http(&mut self, v: &Value, path: &Path) -> Option<HttpStep> {
        let http: HttpStep = self.leaf(v, path)?;
        let bodies = [http.json.is_some(), http.form.is_some(), http.body.is_some()];
        if bodies.iter().filter(|b| **b).count() > 1 {
            self.sink.at_value(path, "give at most one of `json`, `form` and `body`");
            return None;
        }
        Some(http)
    }

    fn transform(&mut self, v: &Value, path: &Path) -> Option<Condition> {
        if !v.is_string() {
            self.sink
                .at_value(path, format!("`transform` takes a jq program as a string, found {}", describe(v)));
            return None;
        }
        self.leaf(v, path)
    }

    fn code(&mut self, v: &Value, path: &Path) -> Option<CodeStep> {
        match v {
            Value::String(s) => Some(CodeStep { source: s.clone(), memory_mb: 64 }),
            Value::Object(map) => {
                self.unknown_keys(map, path, &["source", "memory_mb"], "code step");
                let source: String = self.required(map, "source", path)?;
                let memory_mb = self.opt::<u32>(map, "memory_mb", path).flatten().unwrap_or(64);
                if !(1..=4096).contains(&memory_mb) {
                    self.sink.at_value(&path.key("memory_mb"), "`memory_mb` must be between 1 and 4096");
                    return None;
                }
                Some(CodeStep { source, memory_mb })
            }
            other => {
                self.sink
                    .at_value(path, format!("`code` takes JavaScript source, found {}", describe(other)));
                None
            }
        }
    }

    fn branch(&mut self, v: &Value, path: &Path) -> Option<BranchStep> {
        let map = self.mapping(v, path, "a branch (`if`, `then`, `else`)")?;
        self.unknown_keys(map, path, &["if", "then", "else"], "branch");
        let condition: Option<Condition> = self.required(map, "if", path);
        let then = self.block(map, "then", path, true);
        let otherwise = self.block(map, "else", path, false);
        Some(BranchStep { condition: condition?, then: then?, otherwise: otherwise? })
    }

    fn switch(&mut self, v: &Value, path: &Path) -> Option<SwitchStep> {
        let map = self.mapping(v, path, "a switch (`value`, `cases`, `default`)")?;
        self.unknown_keys(map, path, &["value", "cases", "default"], "switch");
        let value: Option<Template> = self.required(map, "value", path);
        let cases_path = path.key("cases");
        let cases = match map.get("cases") {
            Some(c) => {
                let cases_map = self.mapping(c, &cases_path, "a mapping of case values to step lists")?;
                let mut cases = IndexMap::new();
                for (k, steps) in cases_map {
                    if let Some(steps) = self.steps(steps, &cases_path.key(k)) {
                        cases.insert(k.clone(), steps);
                    }
                }
                Some(cases)
            }
            None => {
                self.sink.at_value(path, "a switch needs `cases`");
                None
            }
        };
        let default = self.block(map, "default", path, false);
        Some(SwitchStep { value: value?, cases: cases?, default: default? })
    }

    fn for_each(&mut self, v: &Value, path: &Path) -> Option<ForEachStep> {
        let map = self.mapping(v, path, "a loop (`items`, `parallelism`, `steps`)")?;
        self.unknown_keys(map, path, &["items", "parallelism", "steps"], "for_each");
        let items: Option<Template> = self.required(map, "items", path);
        let parallelism = self.opt::<u32>(map, "parallelism", path).flatten().unwrap_or(1);
        if parallelism == 0 {
            self.sink.at_value(&path.key("parallelism"), "`parallelism` must be at least 1");
        }
        let steps = self.block(map, "steps", path, true);
        Some(ForEachStep { items: items?, parallelism: parallelism.max(1), steps: steps? })
    }

    fn wait(&mut self, v: &Value, path: &Path) -> Option<WaitStep> {
        match v {
            Value::String(_) => self.leaf::<Duration>(v, path).map(WaitStep::For),
            Value::Object(map) => {
                self.unknown_keys(map, path, &["for", "until"], "wait");
                match (map.get("for"), map.get("until")) {
                    (Some(d), None) => self.leaf::<Duration>(d, &path.key("for")).map(WaitStep::For),
                    (None, Some(u)) => self.leaf::<Template>(u, &path.key("until")).map(WaitStep::Until),
                    _ => {
                        self.sink.at_value(path, "`wait` takes either `for: <duration>` or `until: <time>`");
                        None
                    }
                }
            }
            other => {
                self.sink.at_value(
                    path,
                    format!("`wait` takes a duration such as `30s`, found {}", describe(other)),
                );
                None
            }
        }
    }

    fn call(&mut self, v: &Value, path: &Path) -> Option<CallStep> {
        self.leaf(v, path)
    }

    fn retry(&mut self, map: &Map<String, Value>, path: &Path) -> Option<RetryPolicy> {
        let Some(v) = map.get("retry") else { return Some(RetryPolicy::default()) };
        let p = path.key("retry");
        let policy: RetryPolicy = self.leaf(v, &p)?;
        if policy.attempts == 0 {
            self.sink.at_value(
                &p.key("attempts"),
                "`attempts` counts the first try too, so it must be at least 1",
            );
            return None;
        }
        if policy.max < policy.initial {
            self.sink.at_value(
                &p.key("max"),
                format!("`max` ({}) is shorter than `initial` ({})", policy.max, policy.initial),
            );
            return None;
        }
        Some(policy)
    }

    fn on_error(&mut self, map: &Map<String, Value>, path: &Path) -> Option<OnError> {
        let p = path.key("on_error");
        match map.get("on_error") {
            None => Some(OnError::Fail),
            Some(Value::String(s)) if s == "fail" => Some(OnError::Fail),
            Some(Value::String(s)) if s == "continue" => Some(OnError::Continue),
            Some(Value::Object(m)) => {
                self.unknown_keys(m, &p, &["steps"], "on_error");
                self.block(m, "steps", &p, true).map(OnError::Handle)
            }
            Some(other) => {
                self.sink.at_value(
                    &p,
                    format!("`on_error` is `fail`, `continue`, or `{{ steps: [...] }}`, found {other}"),
                );
                None
            }
        }
    }

    /// A nested step list under `key`; absent lists are empty unless `required`.
    fn block(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        path: &Path,
        required: bool,
    ) -> Option<Vec<Step>> {
        match map.get(key) {
            Some(v) => self.steps(v, &path.key(key)),
            None if required => {
                self.sink.at_value(path, format!("missing `{key}`: a list of steps"));
                None
            }
            None => Some(Vec::new()),
        }
    }

    fn mapping<'v>(&mut self, v: &'v Value, path: &Path, what: &str) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(map) => Some(map),
            other => {
                self.sink.at_value(path, format!("expected {what} (a mapping), found {}", describe(other)));
                None
            }
        }
    }

    fn unknown_keys(&mut self, map: &Map<String, Value>, path: &Path, known: &[&str], what: &str) {
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            let hint = match suggest(key, known) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("expected one of: {}", known.join(", ")),
            };
            self.sink.at_key(&path.key(key), format!("unknown key `{key}` in {what}; {hint}"));
        }
    }

    fn required<T: DeserializeOwned>(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        path: &Path,
    ) -> Option<T> {
        match map.get(key) {
            Some(v) => self.leaf(v, &path.key(key)),
            None => {
                self.sink.at_value(path, format!("missing `{key}`"));
                None
            }
        }
    }

    /// An optional field: `None` when it failed to parse, `Some(None)` when absent.
    fn opt<T: DeserializeOwned>(
        &mut self,
        map: &Map<String, Value>,
        key: &str,
        path: &Path,
    ) -> Option<Option<T>> {
        match map.get(key) {
            Some(v) => self.leaf(v, &path.key(key)).map(Some),
            None => Some(None),
        }
    }

    /// Reads a value with serde, reporting errors at the exact nested path.
    pub(crate) fn leaf<T: DeserializeOwned>(&mut self, v: &Value, path: &Path) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(v) {
            Ok(t) => Some(t),
            Err(e) => {
                let at = path.join(&Path::from(e.path()));
                let message = e.inner().to_string();
                if message.starts_with("unknown field") {
                    self.sink.at_key(&at, message);
                } else {
                    self.sink.at_value(&at, message);
                }
                None
            }
        }
    }
}

/// A duration as written in retention blocks: whole days as `90d`, anything else as usual.
fn in_days(d: Duration) -> String {
    const DAY: u64 = 86_400_000;
    if d.as_millis().is_multiple_of(DAY) { format!("{}d", d.as_millis() / DAY) } else { d.to_string() }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}
