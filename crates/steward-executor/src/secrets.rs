//! Secrets for steps: opening the connections an http step uses (its `connection:` and the
//! `secret()` handles in its request), OAuth2 access tokens, and the redactor that keeps every
//! secret of a workspace out of what runs store.
//!
//! Secrets are opened when a request is about to be sent and dropped when it has been; the
//! step adapter decides whether they may go to the request's host. Every outcome is redacted
//! before the engine sees it, so no journal entry, run output, progress event or log line
//! derived from it can carry a secret, even when a service echoes one back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use steward_engine::{ErrorKind, Outcome, StepError, Timestamp};
use steward_steps::credential::{Apply, Credential, Grant, HandleValue};
use steward_steps::http::{HttpClient, HttpError, Secrets, Sent};
use steward_steps::oauth::{ClientAuth, TokenRequest};
use steward_store::Connection;
use steward_vault::{Keyring, Redactor, Secret};
use zeroize::Zeroizing;

/// How long a workspace's redactor is used before its secrets are read again. A secret an
/// attempt uses is always added to the redaction of that attempt's outcome, so a connection
/// created meanwhile is covered where it matters.
pub(crate) const REDACTOR_TTL: Duration = Duration::from_secs(5);
/// How long an opened connection is used before it is read again: a revocation, rotation or
/// deletion reaches requests within this time (the product promises revocation stops work
/// within a second).
pub(crate) const OPENED_TTL: Duration = Duration::from_millis(500);
/// A token is renewed this long before the server said it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);
/// How long a token whose server gave no lifetime is used.
const TOKEN_DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// The secrets an attempt may attach, and those its outcome must be redacted for.
#[derive(Default)]
pub(crate) struct Prepared {
    pub secrets: Secrets,
    pub redact: Vec<(String, Secret)>,
}

#[derive(Clone)]
struct CachedToken {
    /// The connection's `updated_at` when the token was issued: a rotation invalidates it.
    version: Timestamp,
    token: Secret,
    until: Instant,
}

/// A connection and its secret, and when they were read.
type Opened = (Instant, Connection, Secret);

/// Something read for a workspace, and when it was read.
type PerWorkspace<T> = Mutex<HashMap<String, (Instant, T)>>;

/// The redactor last built for what attempts of a workspace carried, by the names of the
/// connections they used, with the values it was built from.
type AttemptRedactors = Mutex<HashMap<(String, String), (Vec<(String, Secret)>, Arc<Redactor>)>>;

/// Opens connections for steps and redacts outcomes; one per executor.
pub(crate) struct Vault {
    keyring: Option<Arc<Keyring>>,
    store: Arc<dyn steward_store::Store>,
    /// Each workspace's egress allowlist (`None`: no allowlist), and when it was read.
    allowlists: PerWorkspace<Option<Vec<String>>>,
    redactors: PerWorkspace<Arc<Redactor>>,
    attempt_redactors: AttemptRedactors,
    /// Connections opened in the last [`OPENED_TTL`], by workspace and name.
    opened: Mutex<HashMap<(String, String), Opened>>,
    tokens: Mutex<HashMap<(String, String), CachedToken>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("keyring", &self.keyring).finish_non_exhaustive()
    }
}

impl Vault {
    pub(crate) fn new(keyring: Option<Arc<Keyring>>, store: Arc<dyn steward_store::Store>) -> Vault {
        Vault {
            keyring,
            store,
            allowlists: Mutex::default(),
            redactors: Mutex::default(),
            attempt_redactors: Mutex::default(),
            opened: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    /// The hosts `workspace`'s requests may go to, when its policy names any. Read again every
    /// few seconds; a policy that cannot be read fails the step rather than letting it out.
    pub(crate) async fn allowed_hosts(&self, workspace: &str) -> Result<Option<Vec<String>>, StepError> {
        let cached = self.allowlists.lock().unwrap_or_else(PoisonError::into_inner).get(workspace).cloned();
        if let Some((at, hosts)) = cached
            && at.elapsed() < REDACTOR_TTL
        {
            return Ok(hosts);
        }
        let policy = self.store.policy(workspace).await.map_err(|e| {
            StepError::new(ErrorKind::Internal, format!("cannot read the workspace's egress policy: {e}"))
        })?;
        let hosts = policy.settings.egress_hosts;
        self.allowlists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(workspace.to_owned(), (Instant::now(), hosts.clone()));
        Ok(hosts)
    }

    /// Forgets what was read of `workspace`'s secrets, after one was added or changed here,
    /// so that the next redaction knows it at once (other processes within a few seconds).
    pub(crate) fn forget(&self, workspace: &str) {
        self.redactors.lock().unwrap_or_else(PoisonError::into_inner).remove(workspace);
    }

    /// The redactor of `workspace`'s secrets (and live OAuth2 tokens). When the secrets cannot
    /// be read, the last known redactor is used, and an error is logged.
    pub(crate) async fn redactor(&self, workspace: &str, now: Timestamp) -> Arc<Redactor> {
        let cached = self.redactors.lock().unwrap_or_else(PoisonError::into_inner).get(workspace).cloned();
        if let Some((at, r)) = &cached
            && at.elapsed() < REDACTOR_TTL
        {
            return r.clone();
        }
        let Some(keyring) = &self.keyring else { return Arc::new(Redactor::empty()) };
        let secrets = match keyring.workspace_secrets(workspace, now).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(workspace, error = %e, "cannot read the workspace's secrets for redaction");
                return cached.map_or_else(|| Arc::new(Redactor::empty()), |(_, r)| r);
            }
        };
        let tokens: Vec<(String, Secret)> = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|((ws, _), _)| ws == workspace)
            .map(|((_, name), t)| (name.clone(), t.token.clone()))
            .collect();
        let redactor = Arc::new(Redactor::new(secrets.into_iter().chain(tokens)));
        self.redactors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(workspace.to_owned(), (Instant::now(), redactor.clone()));
        redactor
    }

    /// The redactor of the values an attempt's request carried (`redact` of [`Prepared`]).
    /// Building one costs more than a request on loopback, so the last one built for the same
    /// connections is reused while their values are the same; a rotation or a new token
    /// builds another.
    pub(crate) fn attempt_redactor(&self, workspace: &str, redact: Vec<(String, Secret)>) -> Arc<Redactor> {
        let mut names: Vec<&str> = redact.iter().map(|(n, _)| n.as_str()).collect();
        names.dedup();
        let key = (workspace.to_owned(), names.join("\n"));
        let mut cache = self.attempt_redactors.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((values, redactor)) = cache.get(&key)
            && *values == redact
        {
            return redactor.clone();
        }
        let redactor = Arc::new(Redactor::new(redact.iter().cloned()));
        cache.insert(key, (redact, redactor.clone()));
        redactor
    }

    /// Opens the step's connection and the connections its handles name. OAuth2 token
    /// requests this makes are added to `sent`, even when preparing then fails.
    pub(crate) async fn prepare(
        &self,
        workspace: &str,
        connection: Option<&str>,
        handles: &[String],
        http: &HttpClient,
        now: Timestamp,
        sent: &mut Vec<Sent>,
    ) -> Result<Prepared, StepError> {
        let mut prepared = Prepared::default();
        if let Some(name) = connection {
            let (c, secret) = self.open(workspace, name, now).await?;
            let apply = self.apply(&c, &secret, http, sent).await?;
            prepared.redact.extend(self.wire_forms(&c, secret, &apply));
            prepared.secrets.credential = Some(Credential { grant: grant(&c), apply });
        }
        let mut names: Vec<&String> = handles.iter().collect();
        names.dedup();
        for name in names {
            if prepared.secrets.handles.iter().any(|h| &h.grant.connection == name) {
                continue;
            }
            let (c, secret) = self.open(workspace, name, now).await?;
            let value = self.handle_value(&c, &secret, http, sent).await?;
            prepared.redact.push((c.name.clone(), Secret::from(value.as_str())));
            prepared.redact.push((c.name.clone(), secret));
            prepared.secrets.handles.push(HandleValue { grant: grant(&c), value });
        }
        Ok(prepared)
    }

    async fn open(
        &self,
        workspace: &str,
        name: &str,
        now: Timestamp,
    ) -> Result<(Connection, Secret), StepError> {
        let keyring = self.keyring.as_ref().ok_or_else(|| {
            refused(format!(
                "connection `{name}` cannot be used: this executor runs without the vault's master key"
            ))
        })?;
        let key = (workspace.to_owned(), name.to_owned());
        let cached = self.opened.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        let (c, secret) = match cached {
            Some((at, c, secret)) if at.elapsed() < OPENED_TTL => (c, secret),
            _ => {
                let opened = keyring
                    .open_named(workspace, name, now)
                    .await
                    .map_err(|e| StepError::new(ErrorKind::Internal, format!("connection `{name}`: {e}")))?
                    .ok_or_else(|| {
                        StepError::new(ErrorKind::Input, format!("connection `{name}` does not exist"))
                    })?;
                let mut cache = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
                // Expired entries go whenever one is added, so an unused secret does not stay.
                cache.retain(|_, (at, ..)| at.elapsed() < OPENED_TTL);
                cache.insert(key, (Instant::now(), opened.0.clone(), opened.1.clone()));
                opened
            }
        };
        if c.revoked_at.is_some() {
            return Err(refused(format!(
                "connection `{name}` is revoked; rotate its secret to use it again"
            )));
        }
        Ok((c, secret))
    }

    /// How the connection's credential goes on a request.
    async fn apply(
        &self,
        c: &Connection,
        secret: &Secret,
        http: &HttpClient,
        sent: &mut Vec<Sent>,
    ) -> Result<Apply, StepError> {
        let text = text_of(c, secret)?;
        let setting = |key: &str| c.settings.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        Ok(match c.kind.as_str() {
            "api_key" if !setting("query").is_empty() => Apply::Query { name: setting("query"), value: text },
            "api_key" => Apply::Header { name: setting("header"), value: text },
            "bearer" => Apply::Header {
                name: "authorization".into(),
                value: Zeroizing::new(format!("Bearer {}", *text)),
            },
            "basic" => {
                use base64::Engine as _;
                let pair = format!("{}:{}", setting("username"), *text);
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
                Apply::Header {
                    name: "authorization".into(),
                    value: Zeroizing::new(format!("Basic {encoded}")),
                }
            }
            "headers" => Apply::Headers(header_pairs(c, &text)?),
            "oauth2_client_credentials" => {
                let token = self.token(c, &text, http, sent).await?;
                Apply::Header {
                    name: "authorization".into(),
                    value: Zeroizing::new(format!("Bearer {}", *token)),
                }
            }
            other => {
                return Err(StepError::new(
                    ErrorKind::Input,
                    format!("connection `{}` has unknown kind `{other}`", c.name),
                ));
            }
        })
    }

    /// What `secret("name")` stands for: the secret of a one-value connection, or the current
    /// access token of an OAuth2 one.
    async fn handle_value(
        &self,
        c: &Connection,
        secret: &Secret,
        http: &HttpClient,
        sent: &mut Vec<Sent>,
    ) -> Result<Zeroizing<String>, StepError> {
        let text = text_of(c, secret)?;
        match c.kind.as_str() {
            "oauth2_client_credentials" => self.token(c, &text, http, sent).await,
            "headers" => Err(StepError::new(
                ErrorKind::Input,
                format!(
                    "secret(\"{}\") names a headers connection, which holds several values; use `connection: {}` on the http step",
                    c.name, c.name
                ),
            )),
            _ => Ok(text),
        }
    }

    /// The values that go on the wire for a credential (to redact beyond the stored secret).
    fn wire_forms(&self, c: &Connection, secret: Secret, apply: &Apply) -> Vec<(String, Secret)> {
        let mut out = vec![(c.name.clone(), secret)];
        if let Apply::Header { value, .. } = apply
            && c.kind == "oauth2_client_credentials"
        {
            let token = value.trim_start_matches("Bearer ");
            out.push((c.name.clone(), Secret::from(token)));
        }
        out
    }

    /// A live access token for an OAuth2 connection, from the cache or the token endpoint.
    async fn token(
        &self,
        c: &Connection,
        client_secret: &Zeroizing<String>,
        http: &HttpClient,
        sent: &mut Vec<Sent>,
    ) -> Result<Zeroizing<String>, StepError> {
        let key = (c.workspace_id.clone(), c.name.clone());
        let cached = self.tokens.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        if let Some(t) = cached
            && t.version == c.updated_at
            && Instant::now() < t.until
        {
            return Ok(Zeroizing::new(String::from_utf8_lossy(t.token.expose()).into_owned()));
        }
        let setting = |k: &str| c.settings.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let scopes = match c.settings.get("scopes") {
            Some(serde_json::Value::Array(list)) => {
                list.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()
            }
            Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let request = TokenRequest {
            connection: c.name.clone(),
            token_url: setting("token_url"),
            client_id: setting("client_id"),
            client_secret: client_secret.clone(),
            scopes,
            auth: if setting("client_auth") == "body" { ClientAuth::Body } else { ClientAuth::Basic },
        };
        let token =
            http.client_credentials(&request, Duration::from_secs(30), sent).await.map_err(token_error)?;
        let lifetime = token.expires_in.unwrap_or(TOKEN_DEFAULT_LIFETIME);
        let until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        let cached =
            CachedToken { version: c.updated_at, token: Secret::from(token.access_token.as_str()), until };
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner).insert(key, cached);
        // The new token must be redacted from payloads of every run of the workspace.
        self.redactors.lock().unwrap_or_else(PoisonError::into_inner).remove(&c.workspace_id);
        Ok(token.access_token)
    }
}

/// Replaces every secret of `redactor` in an outcome's payloads and messages.
pub(crate) fn redact_outcome(redactor: &Redactor, outcome: &mut Outcome) {
    if redactor.is_empty() {
        return;
    }
    match outcome {
        Outcome::Succeeded(v) => {
            redactor.redact_value(v);
        }
        Outcome::Items(items) => items.iter_mut().for_each(|v| {
            redactor.redact_value(v);
        }),
        Outcome::Failed(e) => e.message = redactor.redact_str(&e.message).into_owned(),
        Outcome::Suspend { message: Some(m), .. } => *m = redactor.redact_str(m).into_owned(),
        _ => {}
    }
}

fn grant(c: &Connection) -> Grant {
    Grant { connection: c.name.clone(), hosts: c.hosts.clone() }
}

fn text_of(c: &Connection, secret: &Secret) -> Result<Zeroizing<String>, StepError> {
    std::str::from_utf8(secret.expose()).map(|s| Zeroizing::new(s.to_owned())).map_err(|_| {
        StepError::new(ErrorKind::Input, format!("connection `{}` holds a secret that is not text", c.name))
    })
}

fn header_pairs(c: &Connection, text: &str) -> Result<Vec<(String, Zeroizing<String>)>, StepError> {
    let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).map_err(|_| {
        StepError::new(
            ErrorKind::Input,
            format!("connection `{}` does not hold a JSON object of headers", c.name),
        )
    })?;
    Ok(parsed
        .into_iter()
        .map(|(k, v)| (k, Zeroizing::new(v.as_str().unwrap_or_default().to_owned())))
        .collect())
}

fn refused(message: String) -> StepError {
    StepError::new(ErrorKind::Refused, message)
}

fn token_error(e: HttpError) -> StepError {
    match e {
        HttpError::Status { status, message, .. } => StepError::http(status, message),
        HttpError::Timeout(m) => StepError::new(ErrorKind::Timeout, m),
        HttpError::Network(m) => StepError::new(ErrorKind::Network, m),
        HttpError::Input(m) => StepError::new(ErrorKind::Input, m),
        HttpError::Refused(m) => StepError::new(ErrorKind::Refused, m),
    }
}
