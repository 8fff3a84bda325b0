//! Model calls: through the vault (the provider key is the connection's credential, attached
//! only for its hosts) and the egress guard, each recorded in the run's data-flow receipt,
//! falling back to the next model when one fails. A prompt holding a secret of the workspace
//! is refused before it is sent.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use steward_agent::definition::ModelTarget;
use steward_agent::provider::{
    ErrorKind as ModelErrorKind, ModelClient, ModelRequest, ProviderError, RetryPolicy, ToolSpec, Transport,
};
use steward_agent::turns::{Record, transcript};
use steward_engine::{ErrorKind, StepError};
use steward_steps::http::{HttpClient, HttpError, Secrets, Sent};

use super::Pass;
use crate::step::record_sent;

/// Limit for one model call, from sending to the last byte.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Calls the agent's model (then its fallbacks) with the conversation so far.
pub(crate) async fn call(
    pass: &mut Pass<'_>,
    records: &[Record],
    tools: &[ToolSpec],
    max_tokens: Option<u32>,
) -> Result<Record, StepError> {
    let def = pass.def;
    let mut fell_back = Vec::new();
    let mut req = ModelRequest {
        model: String::new(),
        system: def.instructions.clone(),
        messages: transcript(records),
        tools: tools.to_vec(),
        max_tokens: max_tokens.or(def.model.max_tokens),
        temperature: def.model.temperature,
    };
    refuse_secrets(pass, &req).await?;
    for target in def.model.targets() {
        req.model.clone_from(&target.name);
        match call_one(pass, &target, &req).await {
            Ok(reply) => {
                let priced = format!("{}/{}", provider_name(&target), reply.model);
                let cost_micros = pass.sv.agents.prices.cost_micros(&priced, reply.usage);
                return Ok(Record::Turn {
                    provider: target.provider,
                    model: reply.model,
                    text: reply.text,
                    tool_calls: reply.tool_calls,
                    usage: reply.usage,
                    cost_micros,
                    fell_back,
                });
            }
            Err(e) if e.kind.falls_back() => fell_back.push(format!("{}: {}", target.name, e.message)),
            Err(e) => return Err(step_error(&target, &e)),
        }
    }
    Err(StepError::new(ErrorKind::Model, format!("no model answered: {}", fell_back.join("; "))))
}

fn provider_name(t: &ModelTarget) -> &'static str {
    t.provider.as_str()
}

async fn call_one(
    pass: &mut Pass<'_>,
    target: &ModelTarget,
    req: &ModelRequest,
) -> Result<steward_agent::provider::ModelReply, ProviderError> {
    let a = pass.a;
    let workspace = &a.compiled.version.workspace;
    let sv = pass.sv;
    let mut token_requests = Vec::new();
    let connection = target.connection.as_ref().map(|c| c.as_str());
    let prepared = sv.vault.prepare(workspace, connection, &[], &sv.http, a.now, &mut token_requests).await;
    record_sent(pass.sent, &a.key, token_requests, &[]);
    let mut prepared = prepared.map_err(|e| ProviderError::new(ModelErrorKind::Refused, e.message))?;
    prepared.secrets.allowed_hosts = sv
        .vault
        .allowed_hosts(workspace)
        .await
        .map_err(|e| ProviderError::new(ModelErrorKind::Refused, e.message))?;
    let transport =
        Arc::new(VaultTransport { http: sv.http.clone(), secrets: prepared.secrets, sent: Mutex::default() });
    let client = ModelClient {
        protocol: target.provider,
        base_url: target.base_url(),
        transport: transport.clone(),
        retry: RetryPolicy::default(),
        timeout: CALL_TIMEOUT,
    };
    // Stream only while someone listens to this run's answer.
    let result = match sv.agents.taps.sender(&a.run_id) {
        Some(tx) => {
            let mut forward = |text: &str| {
                let _ = tx.send(text.to_owned());
            };
            client.complete(req, Some(&mut forward)).await
        }
        None => client.complete(req, None).await,
    };
    let sent = std::mem::take(&mut *transport.sent.lock().unwrap_or_else(PoisonError::into_inner));
    let categories: Vec<String> = categories(pass);
    record_sent(pass.sent, &a.key, sent, &categories);
    result
}

/// What the conversation is built from: the step's input, and what tools brought back.
fn categories(pass: &Pass<'_>) -> Vec<String> {
    let step = crate::step::agent_step(pass.a);
    let mut out: Vec<String> =
        step.map(|s| steward_flow::agent_categories(s).into_iter().collect()).unwrap_or_default();
    out.push("tools".into());
    out
}

/// Refuses a request whose prompt, tools or arguments hold a secret of the workspace.
async fn refuse_secrets(pass: &Pass<'_>, req: &ModelRequest) -> Result<(), StepError> {
    let a = pass.a;
    let redactor = pass.sv.vault.redactor(&a.compiled.version.workspace, a.now).await;
    if redactor.is_empty() {
        return Ok(());
    }
    let original = serde_json::to_value(req).unwrap_or(Value::Null);
    let mut redacted = original.clone();
    redactor.redact_value(&mut redacted);
    if redacted == original {
        return Ok(());
    }
    Err(StepError::new(
        ErrorKind::Refused,
        "the conversation holds a secret of this workspace, so it was not sent to the model; \
         tools must use connections instead of returning credentials",
    ))
}

fn step_error(target: &ModelTarget, e: &ProviderError) -> StepError {
    let kind = match e.kind {
        ModelErrorKind::Refused => ErrorKind::Refused,
        ModelErrorKind::Timeout => ErrorKind::Timeout,
        ModelErrorKind::Network => ErrorKind::Network,
        _ => ErrorKind::Model,
    };
    let mut error = StepError::new(kind, format!("{}: {}", target.name, e.message));
    error.status = e.status;
    error
}

/// Sends provider requests with the HTTP client of http steps: the egress guard, the
/// workspace's allowlist and the connection's hosts apply, and what was sent is noted for the
/// receipt.
struct VaultTransport {
    http: HttpClient,
    secrets: Secrets,
    sent: Mutex<Vec<Sent>>,
}

impl std::fmt::Debug for VaultTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultTransport").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Transport for VaultTransport {
    async fn post_json(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &Value,
        timeout: Duration,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut sent = Vec::new();
        let result = self.http.post_raw(url, headers, body, &self.secrets, timeout, &mut sent).await;
        self.sent.lock().unwrap_or_else(PoisonError::into_inner).extend(sent);
        result.map_err(|e| match e {
            HttpError::Timeout(m) => ProviderError::new(ModelErrorKind::Timeout, m),
            HttpError::Network(m) => ProviderError::new(ModelErrorKind::Network, m),
            HttpError::Refused(m) => ProviderError::new(ModelErrorKind::Refused, m),
            HttpError::Input(m) => ProviderError::new(ModelErrorKind::BadRequest, m),
            HttpError::Status { message, .. } => ProviderError::new(ModelErrorKind::BadResponse, message),
        })
    }
}
