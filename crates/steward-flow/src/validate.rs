//! Checks across steps that a single step cannot make alone: unique ids, `needs` that name
//! sibling steps, no cycles, and expressions that only read steps that have finished by then.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::diagnostic::{Sink, suggest};
use crate::model::{Flow, OnError, Step, StepKind, WaitStep};
use crate::names::StepId;
use crate::path::Path;
use crate::template::Template;

/// Every step id in the flow, and for steps in a loop body the loop they belong to.
struct Known {
    ids: HashSet<StepId>,
    loop_of: HashMap<String, String>,
}

pub(crate) fn check(flow: &Flow, sink: &mut Sink<'_>) {
    let mut loop_of = HashMap::new();
    loop_bodies(&flow.steps, None, &mut loop_of);
    let all = Known { ids: all_ids(&flow.steps, sink), loop_of };
    check_block(&flow.steps, &BTreeSet::new(), &all, sink);
    for (name, t) in &flow.vars {
        for id in template_refs(t) {
            sink.at_value(
                &Path::root().key("vars").key(name),
                format!("`vars` are computed when the run starts, so they cannot read step `{id}`"),
            );
        }
    }
    if let Some(out) = &flow.output {
        let visible = reachable_everything(&flow.steps);
        for id in template_refs(out) {
            refer(&id, &visible, &all, &Path::root().key("output"), sink);
        }
    }
}

fn loop_bodies(steps: &[Step], inside: Option<&StepId>, out: &mut HashMap<String, String>) {
    for s in steps {
        if let Some(l) = inside {
            out.insert(s.id.to_string(), l.to_string());
        }
        let inner = if matches!(s.kind, StepKind::ForEach(_)) { Some(&s.id) } else { inside };
        for block in children(s) {
            loop_bodies(block, inner, out);
        }
    }
}

/// Every step id in the flow (including nested blocks); reports duplicates.
fn all_ids(steps: &[Step], sink: &mut Sink<'_>) -> HashSet<StepId> {
    let mut seen: HashMap<StepId, Path> = HashMap::new();
    visit(steps, &mut |s| {
        if let Some(first) = seen.get(&s.id) {
            let first = sink.locations.value(&first.key("id"));
            sink.at_value(
                &s.path.key("id"),
                format!(
                    "duplicate step id `{}` (first used on line {}); step ids are unique in the whole flow",
                    s.id, first.line
                ),
            );
        } else {
            seen.insert(s.id.clone(), s.path.clone());
        }
    });
    seen.into_keys().collect()
}

fn visit(steps: &[Step], f: &mut dyn FnMut(&Step)) {
    for s in steps {
        f(s);
        for block in children(s) {
            visit(block, f);
        }
    }
}

/// The nested step lists of a step.
pub fn children(step: &Step) -> Vec<&[Step]> {
    let mut out: Vec<&[Step]> = match &step.kind {
        StepKind::Branch(b) => vec![&b.then, &b.otherwise],
        StepKind::Switch(s) => s.cases.values().map(Vec::as_slice).chain([s.default.as_slice()]).collect(),
        StepKind::ForEach(f) => vec![&f.steps],
        _ => Vec::new(),
    };
    if let OnError::Handle(h) = &step.on_error {
        out.push(h);
    }
    out
}

/// The dependencies of each step in a block: `needs`, or else the previous step.
pub fn dependencies(steps: &[Step]) -> Vec<Vec<usize>> {
    let index: HashMap<&StepId, usize> = steps.iter().enumerate().map(|(i, s)| (&s.id, i)).collect();
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| match &s.needs {
            None if i == 0 => vec![],
            None => vec![i - 1],
            Some(needs) => needs.iter().filter_map(|n| index.get(n).copied()).collect(),
        })
        .collect()
}

fn check_block(steps: &[Step], outer: &BTreeSet<StepId>, all: &Known, sink: &mut Sink<'_>) {
    let siblings: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    for s in steps {
        for (i, n) in s.needs.iter().flatten().enumerate() {
            if n == &s.id {
                sink.at_value(&s.path.key("needs").index(i), format!("step `{n}` cannot need itself"));
            } else if !siblings.contains(&n.as_str()) {
                let hint = suggest(n.as_str(), &siblings)
                    .map(|x| format!("; did you mean `{x}`?"))
                    .unwrap_or_default();
                let why =
                    if all.ids.contains(n) { "is not in the same list of steps" } else { "does not exist" };
                sink.at_value(
                    &s.path.key("needs").index(i),
                    format!("`needs` names step `{n}`, which {why}{hint}"),
                );
            }
        }
    }
    let deps = dependencies(steps);
    if let Some(cycle) = find_cycle(&deps) {
        let names: Vec<&str> = cycle.iter().map(|i| steps[*i].id.as_str()).collect();
        let first = &steps[cycle[0]];
        sink.at_value(
            &first.path.key("needs"),
            format!("these steps need each other in a cycle: {} -> {}", names.join(" -> "), names[0]),
        );
        return;
    }
    for (i, s) in steps.iter().enumerate() {
        let mut visible = outer.clone();
        for d in ancestors(&deps, i) {
            visible.insert(steps[d].id.clone());
            visible.extend(
                reachable_everything(std::slice::from_ref(&steps[d]))
                    .into_iter()
                    .filter(|x| x != &steps[d].id),
            );
        }
        check_step(s, &visible, all, sink);
    }
}

fn check_step(s: &Step, visible: &BTreeSet<StepId>, all: &Known, sink: &mut Sink<'_>) {
    for (path, id) in step_refs(s) {
        refer(&id, visible, all, &path, sink);
    }
    match &s.kind {
        StepKind::ForEach(f) => check_block(&f.steps, visible, all, sink),
        _ => {
            for block in children(s) {
                if !matches!(&s.on_error, OnError::Handle(h) if std::ptr::eq(h.as_slice(), block)) {
                    check_block(block, visible, all, sink);
                }
            }
        }
    }
    if let OnError::Handle(h) = &s.on_error {
        let mut v = visible.clone();
        v.insert(s.id.clone());
        check_block(h, &v, all, sink);
    }
}

fn refer(id: &str, visible: &BTreeSet<StepId>, all: &Known, path: &Path, sink: &mut Sink<'_>) {
    let (id, lenient) = match id.strip_prefix('?') {
        Some(rest) => (rest, true),
        None => (id, false),
    };
    if lenient && !all.ids.iter().any(|v| v.as_str() == id) {
        return;
    }
    if visible.iter().any(|v| v.as_str() == id) {
        return;
    }
    if let Some(owner) = all.loop_of.get(id) {
        sink.at_value(path, format!("this reads step `{id}`, which runs once per item of loop `{owner}`; read the loop's list of results, `.steps.{owner}.output`, instead"));
    } else if all.ids.iter().any(|v| v.as_str() == id) {
        sink.at_value(path, format!("this reads step `{id}`, which cannot have run yet here; add it to `needs` or move this step after it"));
    } else {
        let names: Vec<&str> = all.ids.iter().map(StepId::as_str).collect();
        let hint = suggest(id, &names).map(|x| format!("; did you mean `{x}`?")).unwrap_or_default();
        sink.at_value(path, format!("this reads step `{id}`, which does not exist{hint}"));
    }
}

/// Ids of a set of steps and of everything nested in them except loop bodies (whose steps run
/// once per item, so they have no single output to read from outside).
fn reachable_everything(steps: &[Step]) -> BTreeSet<StepId> {
    let mut out = BTreeSet::new();
    for s in steps {
        out.insert(s.id.clone());
        if !matches!(s.kind, StepKind::ForEach(_)) {
            for block in children(s) {
                out.extend(reachable_everything(block));
            }
        }
    }
    out
}

fn ancestors(deps: &[Vec<usize>], i: usize) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut stack = deps[i].clone();
    while let Some(d) = stack.pop() {
        if out.insert(d) {
            stack.extend(deps[d].iter().copied());
        }
    }
    out
}

fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    // 0 = unvisited, 1 = on the stack, 2 = done
    fn dfs(n: usize, deps: &[Vec<usize>], state: &mut [u8], stack: &mut Vec<usize>) -> Option<Vec<usize>> {
        state[n] = 1;
        stack.push(n);
        for &d in &deps[n] {
            if state[d] == 1 {
                let start = stack.iter().position(|x| *x == d).unwrap_or(0);
                return Some(stack[start..].to_vec());
            }
            if state[d] == 0
                && let Some(c) = dfs(d, deps, state, stack)
            {
                return Some(c);
            }
        }
        stack.pop();
        state[n] = 2;
        None
    }
    let mut state = vec![0u8; deps.len()];
    (0..deps.len()).find_map(|n| if state[n] == 0 { dfs(n, deps, &mut state, &mut Vec::new()) } else { None })
}

/// The step ids each expression of a step (not of its nested steps) reads, with where.
fn step_refs(s: &Step) -> Vec<(Path, String)> {
    let mut out = Vec::new();
    let mut add =
        |path: Path, t: &Template| out.extend(template_refs(t).into_iter().map(|id| (path.clone(), id)));
    let p = &s.path;
    match &s.kind {
        StepKind::Http(h) => {
            let hp = p.key("http");
            add(hp.key("url"), &h.url);
            h.headers.iter().for_each(|(k, t)| add(hp.key("headers").key(k), t));
            h.query.iter().for_each(|(k, t)| add(hp.key("query").key(k), t));
            if let Some(t) = &h.json {
                add(hp.key("json"), t)
            }
            if let Some(t) = &h.body {
                add(hp.key("body"), t)
            }
            if let Some(f) = &h.form {
                f.iter().for_each(|(k, t)| add(hp.key("form").key(k), t))
            }
        }
        StepKind::Switch(sw) => add(p.key("switch").key("value"), &sw.value),
        StepKind::ForEach(f) => add(p.key("for_each").key("items"), &f.items),
        StepKind::Wait(WaitStep::Until(t)) => add(p.key("wait").key("until"), t),
        StepKind::Approval(a) => {
            if let Some(t) = &a.message {
                add(p.key("approval").key("message"), t)
            }
        }
        StepKind::Flow(c) => {
            if let Some(t) = &c.inputs {
                add(p.key("flow").key("inputs"), t)
            }
        }
        StepKind::Agent(a) => {
            if let Some(t) = &a.input {
                add(p.key("agent").key("input"), t)
            }
            if let Some(t) = &a.history {
                add(p.key("agent").key("history"), t)
            }
        }
        _ => {}
    }
    let mut extra = Vec::new();
    if let Some(g) = &s.guard {
        extra.extend(source_refs(g.0.source()).into_iter().map(|id| (p.key("if"), id)));
    }
    match &s.kind {
        StepKind::Transform(c) => {
            extra.extend(source_refs(c.0.source()).into_iter().map(|id| (p.key("transform"), id)))
        }
        StepKind::Branch(b) => extra.extend(
            source_refs(b.condition.0.source()).into_iter().map(|id| (p.key("branch").key("if"), id)),
        ),
        // JavaScript is only scanned for names that are steps, since `steps.length` and the
        // like are ordinary code.
        StepKind::Code(c) => {
            extra.extend(js_refs(&c.source).into_iter().map(|id| (p.key("code"), format!("?{id}"))))
        }
        _ => {}
    }
    out.extend(extra);
    out
}

fn template_refs(t: &Template) -> BTreeSet<String> {
    t.expressions().into_iter().flat_map(|e| source_refs(e.source())).collect()
}

/// The parts of a run's context that an http step's templates read, as data categories for
/// data-flow receipts: `inputs`, `trigger`, `vars`, `item`, `error`, `run` and `steps.<id>`.
/// A step whose templates read nothing (fixed text) has none.
pub fn data_categories(h: &crate::HttpStep) -> BTreeSet<String> {
    let mut templates: Vec<&Template> = vec![&h.url];
    templates.extend(h.headers.values());
    templates.extend(h.query.values());
    templates.extend(h.form.iter().flat_map(|f| f.values()));
    templates.extend(h.json.iter().chain(&h.body));
    categories_of(templates)
}

/// The categories of data an agent step sends to its model provider: what its input reads
/// and its history read (the run's inputs when it has no input).
pub fn agent_categories(a: &crate::AgentStep) -> BTreeSet<String> {
    let mut out = match &a.input {
        Some(t) => categories_of([t]),
        None => BTreeSet::from(["inputs".to_owned()]),
    };
    out.extend(categories_of(a.history.as_ref()));
    out
}

fn categories_of<'a>(templates: impl IntoIterator<Item = &'a Template>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in templates.into_iter().flat_map(Template::expressions) {
        let src = e.source();
        for root in ["inputs", "trigger", "vars", "item", "error", "run"] {
            if reads_root(src, root) {
                out.insert(root.to_owned());
            }
        }
        out.extend(source_refs(src).into_iter().map(|id| format!("steps.{id}")));
    }
    out
}

/// Whether `src` reads `.<root>` (not as part of a longer name such as `.steps.x.inputs`).
fn reads_root(src: &str, root: &str) -> bool {
    let pattern = format!(".{root}");
    src.match_indices(&pattern).any(|(i, _)| {
        let before = src[..i].chars().next_back();
        let after = src[i + pattern.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == ']')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Step ids read by a jq program: `.steps.<id>`, `.steps["<id>"]` and `.steps."<id>"`.
pub fn source_refs(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find(".steps") {
        let before_ok = i == 0 || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let after = &rest[i + ".steps".len()..];
        if before_ok && let Some(id) = leading_ref(after) {
            out.insert(id);
        }
        rest = after;
    }
    out
}

fn leading_ref(after: &str) -> Option<String> {
    let after = after.trim_start();
    let quoted = |s: &str| s.split('"').nth(1).map(str::to_owned);
    if let Some(r) = after.strip_prefix('.') {
        let r = r.trim_start();
        if r.starts_with('"') {
            return quoted(r);
        }
        let id: String = r.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        return (!id.is_empty()).then_some(id);
    }
    after.strip_prefix('[').map(str::trim_start).filter(|r| r.starts_with('"')).and_then(quoted)
}

/// Step ids read by JavaScript through `steps.<id>` or `steps["<id>"]`.
fn js_refs(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find("steps") {
        let before_ok = i == 0 || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$');
        let after = &rest[i + 5..];
        if before_ok {
            let dotted = after
                .strip_prefix('.')
                .map(|r| r.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>());
            let bracket = after
                .strip_prefix("[\"")
                .or_else(|| after.strip_prefix("['"))
                .map(|r| r.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>());
            if let Some(id) = dotted.or(bracket).filter(|s| !s.is_empty()) {
                out.insert(id);
            }
        }
        rest = after;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_step_references_in_jq() {
        let refs = source_refs(r#".steps.a.output + .steps["b"].output + .steps."c" | .xsteps.d"#);
        assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec!["a", "b", "c"]);
    }

    #[test]
    fn finds_step_references_in_js() {
        let refs =
            js_refs("export default ({ steps }) => steps.lookup.output.x + steps['other'] + mysteps.no");
        assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec!["lookup", "other"]);
    }

    #[test]
    fn data_categories_name_what_a_request_reads() {
        let text = "name: t\nsteps:\n  - id: a\n    transform: '1'\n  - id: send\n    http:\n      url: 'https://x.test/${{ .inputs.id }}'\n      headers: {X-Run: '${{ .run.id }}'}\n      json: {v: '${{ .steps.a.output }}', w: '${{ .steps.a.inputs_like }}', fixed: 1}\n";
        let flow = crate::load("t.yaml", text).expect("loads").flow;
        let crate::StepKind::Http(h) = &flow.steps[1].kind else { panic!("an http step") };
        let got: Vec<String> = data_categories(h).into_iter().collect();
        assert_eq!(got, ["inputs", "run", "steps.a"]);
    }
}
