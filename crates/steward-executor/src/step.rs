//! Performing one attempt of one step: evaluate its `if`, render its inputs, do the work, and
//! report an [`Outcome`]. Nothing here writes to the journal; the driver does.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use serde_json::{Value, json};
use steward_engine::{ErrorKind, Event, Outcome, StepError, Timestamp};
use steward_flow::{Context, StepKind, Template, WaitStep};
use steward_steps::code::{CodeError, SandboxLimits};
use steward_steps::http::{Body, HttpError, Request};

use crate::catalog::Compiled;
use crate::children::ChildStarter;
use crate::secrets::{Prepared, Vault, redact_outcome};

/// Default limit for an attempt of a step without a `timeout`.
pub const DEFAULT_TIMEOUT: StdDuration = StdDuration::from_secs(300);

/// Everything an attempt needs, captured when it starts.
#[derive(Debug)]
pub struct Attempt {
    pub compiled: Arc<Compiled>,
    pub run_id: String,
    pub key: String,
    pub attempt: u32,
    pub context: Context,
    /// When the step first started (waits and approval timeouts count from here).
    pub started_at: Timestamp,
    pub now: Timestamp,
    /// What the step recorded of its progress so far (agent steps).
    pub records: std::sync::Arc<Vec<Value>>,
}

/// Shared services for attempts.
#[derive(Debug, Clone)]
pub struct Services {
    pub http: steward_steps::http::HttpClient,
    pub code_limits: SandboxLimits,
    pub children: ChildStarter,
    pub vault: Arc<Vault>,
    pub(crate) agents: Arc<crate::agent::AgentRuntime>,
}

/// What an attempt that ran outside the driver reports: its outcome, and the data-flow
/// receipts of what it sent (`data_sent` events, journaled before the outcome).
#[derive(Debug)]
pub struct Done {
    pub outcome: Outcome,
    pub sent: Vec<Event>,
    /// Progress the attempt recorded (`step_recorded`), journaled before the outcome.
    pub records: Vec<Value>,
}

pub async fn perform(a: Attempt, services: Services) -> Done {
    let mut sent = Vec::new();
    let mut records = Vec::new();
    let outcome = match step_of(&a) {
        Ok(steward_flow::Step { kind: StepKind::Agent(agent), .. }) => {
            crate::agent::perform(&a, &services, agent, &mut sent, &mut records).await
        }
        _ => run(&a, &services, &mut sent).await,
    };
    let outcome = outcome.unwrap_or_else(Outcome::Failed);
    Done { outcome, sent, records }
}

/// The agent step an attempt is for, if it is one.
pub(crate) fn agent_step(a: &Attempt) -> Option<&steward_flow::AgentStep> {
    match &step_of(a).ok()?.kind {
        StepKind::Agent(s) => Some(s),
        _ => None,
    }
}

/// The step of `key` when its attempts can be had at once, without a task or a thread: a
/// transform whose expression and `if` are quick (see [`steward_flow::Expr::is_quick`]). Such
/// steps cost less to evaluate than a hand-off to another thread, and they are pure: they
/// read the run's context and change nothing outside the run.
pub fn in_place<'a>(compiled: &'a Compiled, key: &str) -> Option<&'a steward_flow::Step> {
    let step = step_by_key(compiled, key).ok()?;
    let StepKind::Transform(e) = &step.kind else { return None };
    let quick = e.0.is_quick() && step.guard.as_ref().is_none_or(|g| g.0.is_quick());
    quick.then_some(step)
}

/// The outcome of an [`in_place`] attempt; `None` for every other attempt.
pub fn at_once(a: &Attempt) -> Option<Outcome> {
    let step = in_place(&a.compiled, &a.key)?;
    let StepKind::Transform(e) = &step.kind else { return None };
    if let Some(guard) = &step.guard {
        match guard.0.eval_in(&a.context) {
            Ok(v) if !truthy(&v) => return Some(Outcome::Skipped),
            Ok(_) => {}
            Err(e) => return Some(Outcome::Failed(expr_error(e))),
        }
    }
    Some(e.0.eval_in(&a.context).map_or_else(|e| Outcome::Failed(expr_error(e)), Outcome::Succeeded))
}

fn step_of(a: &Attempt) -> Result<&steward_flow::Step, StepError> {
    step_by_key(&a.compiled, &a.key)
}

fn step_by_key<'a>(compiled: &'a Compiled, key: &str) -> Result<&'a steward_flow::Step, StepError> {
    let id = steward_engine::split_key(key)
        .and_then(|(_, id)| steward_flow::StepId::parse(id).ok())
        .ok_or_else(|| StepError::new(ErrorKind::Internal, format!("bad step key `{key}`")))?;
    compiled.step(&id).ok_or_else(|| StepError::new(ErrorKind::Internal, format!("no step `{id}`")))
}

async fn run(a: &Attempt, sv: &Services, sent: &mut Vec<Event>) -> Result<Outcome, StepError> {
    let step = step_of(a)?;
    if let Some(guard) = &step.guard
        && !truthy(&guard.0.eval_in(&a.context).map_err(expr_error)?)
    {
        return Ok(Outcome::Skipped);
    }
    let timeout = step.timeout.map_or(DEFAULT_TIMEOUT, |d| d.as_std());
    match &step.kind {
        StepKind::Transform(e) => {
            let ctx = a.context.clone();
            let e = e.clone();
            let out = with_timeout(timeout, tokio::task::spawn_blocking(move || e.0.eval_in(&ctx))).await?;
            out.map_err(|e| StepError::new(ErrorKind::Internal, e.to_string()))?
                .map(Outcome::Succeeded)
                .map_err(expr_error)
        }
        StepKind::Http(h) => http(a, sv, h, timeout, sent).await,
        StepKind::Code(c) => code(a, sv, c, timeout).await,
        StepKind::Branch(b) => {
            let yes = truthy(&b.condition.0.eval_in(&a.context).map_err(expr_error)?);
            Ok(Outcome::Branch(Some(if yes { 0 } else { 1 })))
        }
        StepKind::Switch(s) => {
            let v = render(&s.value, &a.context)?;
            let text = match &v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let case = s.cases.get_index_of(&text).unwrap_or(s.cases.len());
            Ok(Outcome::Branch(Some(case)))
        }
        StepKind::ForEach(f) => match render(&f.items, &a.context)? {
            Value::Array(items) => Ok(Outcome::Items(items)),
            Value::Null => Ok(Outcome::Items(Vec::new())),
            other => Err(StepError::new(
                ErrorKind::Input,
                format!("`for_each.items` must be a list, got {}", kind_of(&other)),
            )),
        },
        StepKind::Wait(WaitStep::For(d)) => Ok(Outcome::WaitUntil(a.started_at.plus_millis(d.as_millis()))),
        StepKind::Wait(WaitStep::Until(t)) => Ok(Outcome::WaitUntil(parse_time(&render(t, &a.context)?)?)),
        StepKind::Approval(ap) => {
            let message = match &ap.message {
                Some(t) => Some(match render(t, &a.context)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                }),
                None => None,
            };
            let timeout_at = ap.timeout.map(|d| a.started_at.plus_millis(d.as_millis()));
            Ok(Outcome::Suspend { message, timeout_at })
        }
        StepKind::Agent(_) => {
            Err(StepError::new(ErrorKind::Internal, "agent steps run through the agent loop"))
        }
        StepKind::Flow(call) => {
            let inputs = match &call.inputs {
                Some(t) => render(t, &a.context)?,
                None => json!({}),
            };
            let child = sv
                .children
                .start_child(
                    &a.compiled.version.workspace,
                    call.name.as_str(),
                    inputs,
                    &a.run_id,
                    &a.key,
                    a.attempt,
                    a.now,
                )
                .await?;
            Ok(Outcome::ChildStarted(child))
        }
    }
}

async fn http(
    a: &Attempt,
    sv: &Services,
    h: &steward_flow::HttpStep,
    timeout: StdDuration,
    sent: &mut Vec<Event>,
) -> Result<Outcome, StepError> {
    http_with(a, sv, h, &a.context, idempotency_key(&a.run_id, &a.key), timeout, sent).await
}

/// An http request of the attempt's step, rendered in `ctx` (an agent's HTTP tool renders its
/// request from the call's arguments).
pub(crate) async fn http_with(
    a: &Attempt,
    sv: &Services,
    h: &steward_flow::HttpStep,
    ctx: &Context,
    idempotency_key: String,
    timeout: StdDuration,
    sent: &mut Vec<Event>,
) -> Result<Outcome, StepError> {
    let url = match render(&h.url, ctx)? {
        Value::String(s) => s,
        other => {
            return Err(StepError::new(
                ErrorKind::Input,
                format!("`url` must be a string, got {}", kind_of(&other)),
            ));
        }
    };
    let pairs = |m: &indexmap::IndexMap<String, Template>| -> Result<Vec<(String, Value)>, StepError> {
        m.iter().map(|(k, t)| Ok((k.clone(), render(t, ctx)?))).collect()
    };
    let body = if let Some(j) = &h.json {
        Body::Json(render(j, ctx)?)
    } else if let Some(f) = &h.form {
        Body::Form(pairs(f)?)
    } else if let Some(b) = &h.body {
        Body::Raw(render(b, ctx)?)
    } else {
        Body::None
    };
    let req = Request {
        method: h.method.as_str().to_owned(),
        url,
        headers: pairs(&h.headers)?,
        query: pairs(&h.query)?,
        body,
        expect: h.expect.clone(),
        idempotency_key,
    };
    let workspace = &a.compiled.version.workspace;
    let names = req.handle_names();
    let connection = h.connection.as_ref().map(|c| c.as_str());
    let mut token_requests = Vec::new();
    let prepared = if connection.is_some() || !names.is_empty() {
        sv.vault.prepare(workspace, connection, &names, &sv.http, a.now, &mut token_requests).await
    } else {
        Ok(Prepared::default())
    };
    // A token request carries the connection's client credentials and none of the run's data.
    record_sent(sent, &a.key, token_requests, &[]);
    let mut prepared = prepared?;
    prepared.secrets.allowed_hosts = sv.vault.allowed_hosts(workspace).await?;
    let exchange = sv.http.exchange(&req, &prepared.secrets, timeout).await;
    let categories: Vec<String> = steward_flow::data_categories(h).into_iter().collect();
    record_sent(sent, &a.key, exchange.sent, &categories);
    let mut outcome = match exchange.result {
        Ok(out) => Outcome::Succeeded(out),
        Err(HttpError::Status { status, message, .. }) => Outcome::Failed(StepError::http(status, message)),
        Err(HttpError::Timeout(m)) => Outcome::Failed(StepError::new(ErrorKind::Timeout, m)),
        Err(HttpError::Network(m)) => Outcome::Failed(StepError::new(ErrorKind::Network, m)),
        Err(HttpError::Input(m)) => Outcome::Failed(StepError::new(ErrorKind::Input, m)),
        Err(HttpError::Refused(m)) => Outcome::Failed(StepError::new(ErrorKind::Refused, m)),
    };
    // What the request carried is redacted from what came back, whatever else the driver
    // redacts for the workspace.
    if !prepared.redact.is_empty() {
        redact_outcome(&sv.vault.attempt_redactor(workspace, prepared.redact), &mut outcome);
    }
    Ok(outcome)
}

/// Data-flow receipt entries for what a step's requests sent.
pub(crate) fn record_sent(
    events: &mut Vec<Event>,
    key: &str,
    sent: Vec<steward_steps::http::Sent>,
    categories: &[String],
) {
    events.extend(sent.into_iter().map(|s| Event::DataSent {
        key: key.to_owned(),
        host: s.host,
        connections: s.connections,
        bytes: s.bytes,
        categories: categories.to_vec(),
    }));
}

/// The `Idempotency-Key` of a step instance: the same for every attempt of it in a run.
pub fn idempotency_key(run_id: &str, key: &str) -> String {
    format!("{run_id}:{key}")
}

async fn code(
    a: &Attempt,
    sv: &Services,
    c: &steward_flow::CodeStep,
    timeout: StdDuration,
) -> Result<Outcome, StepError> {
    let mut limits = sv.code_limits.clone();
    limits.memory_bytes = (c.memory_mb as usize).saturating_mul(1024 * 1024);
    limits.cpu_time = limits.cpu_time.min(timeout);
    let (source, ctx) = (c.source.clone(), a.context.clone());
    let result = with_timeout(
        timeout,
        tokio::task::spawn_blocking(move || steward_steps::code::run(&source, &ctx.to_json(), &limits)),
    )
    .await?;
    match result.map_err(|e| StepError::new(ErrorKind::Internal, e.to_string()))? {
        Ok(v) => Ok(Outcome::Succeeded(v)),
        Err(e @ (CodeError::MemoryLimit { .. } | CodeError::CpuLimit { .. })) => {
            Err(StepError::new(ErrorKind::Limit, e.to_string()))
        }
        Err(e) => Err(StepError::new(ErrorKind::Code, e.to_string())),
    }
}

async fn with_timeout<T>(timeout: StdDuration, fut: impl Future<Output = T>) -> Result<T, StepError> {
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        StepError::new(
            ErrorKind::Timeout,
            format!("the step did not finish within {}ms", timeout.as_millis()),
        )
    })
}

fn render(t: &Template, ctx: &Context) -> Result<Value, StepError> {
    t.render_in(ctx).map_err(expr_error)
}

fn expr_error(e: steward_flow::EvalError) -> StepError {
    StepError::new(ErrorKind::Expression, e.to_string())
}

/// jq truthiness: everything but `false` and `null` is true.
fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A wait's `until`: milliseconds since the epoch, or an RFC 3339 time.
fn parse_time(v: &Value) -> Result<Timestamp, StepError> {
    match v {
        Value::Number(n) => n.as_i64().map(Timestamp).ok_or_else(|| {
            StepError::new(ErrorKind::Input, format!("`until` {n} is not a time in milliseconds"))
        }),
        Value::String(s) => humantime::parse_rfc3339_weak(s)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| Timestamp(d.as_millis() as i64))
            .ok_or_else(|| {
                StepError::new(
                    ErrorKind::Input,
                    format!("`until` {s:?} is not an RFC 3339 time such as 2026-01-31T09:00:00Z"),
                )
            }),
        other => {
            Err(StepError::new(ErrorKind::Input, format!("`until` must be a time, got {}", kind_of(other))))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use steward_store::FlowVersion;

    use super::*;

    fn attempt(steps: &str, key: &str, context: Value) -> Attempt {
        let version = FlowVersion {
            id: "v".into(),
            workspace: "default".into(),
            flow_id: "f".into(),
            name: "t".into(),
            version: 1,
            file_name: "t.yaml".into(),
            source: format!("name: t\nsteps:\n{steps}"),
            digest: "d".into(),
            concurrency: None,
            created_at: Timestamp(0),
        };
        Attempt {
            compiled: Arc::new(Compiled::new(version).expect("compiles")),
            run_id: "r".into(),
            key: key.into(),
            attempt: 1,
            context: Context::from_json(&context),
            started_at: Timestamp(0),
            now: Timestamp(0),
            records: Default::default(),
        }
    }

    #[test]
    fn quick_transforms_finish_at_once() {
        let a = attempt("  - {id: a, transform: '.inputs.n + 1'}\n", "a", json!({"inputs": {"n": 41}}));
        assert_eq!(at_once(&a), Some(Outcome::Succeeded(json!(42))));
    }

    #[test]
    fn guards_and_errors_are_decided_at_once_too() {
        let skipped =
            attempt("  - {id: a, if: '.inputs.go', transform: '1'}\n", "a", json!({"inputs": {"go": false}}));
        assert_eq!(at_once(&skipped), Some(Outcome::Skipped));
        let failed = attempt("  - {id: a, transform: '.inputs.s + 1'}\n", "a", json!({"inputs": {"s": "x"}}));
        assert!(
            matches!(at_once(&failed), Some(Outcome::Failed(e)) if e.kind == ErrorKind::Expression),
            "an expression error is the step's failure"
        );
    }

    #[test]
    fn anything_that_may_run_long_or_wait_is_not_done_at_once() {
        let ctx = json!({"inputs": {}});
        let slow = attempt("  - {id: a, transform: '[range(10)] | length'}\n", "a", ctx.clone());
        assert_eq!(at_once(&slow), None, "a loop runs on the blocking pool under its timeout");
        let slow_guard = attempt("  - {id: a, if: 'last(range(3)) > 1', transform: '1'}\n", "a", ctx.clone());
        assert_eq!(at_once(&slow_guard), None);
        let wait = attempt("  - {id: a, wait: {for: 1s}}\n", "a", ctx);
        assert_eq!(at_once(&wait), None);
    }
}
