//! OAuth 2.0 client credentials (RFC 6749, section 4.4): trading a client id and secret for an
//! access token at the connection's token URL. Caching the token is the caller's business.

use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::http::{HttpClient, HttpError, Sent, display_url, request_size};

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (`client_secret_basic`, the RFC's default).
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Body,
}

/// A token request for one connection.
#[derive(Clone)]
pub struct TokenRequest {
    pub connection: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Zeroizing<String>,
    pub scopes: Vec<String>,
    pub auth: ClientAuth,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("connection", &self.connection)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// An access token and how long it is valid, as the server said.
#[derive(Clone)]
pub struct Token {
    pub access_token: Zeroizing<String>,
    pub expires_in: Option<Duration>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

impl HttpClient {
    /// Asks the token endpoint for an access token. Errors name the connection and the
    /// endpoint and, when the server gives one, the OAuth error code, never a secret. The
    /// request, once a server answered it, is added to `sent` (for data-flow receipts), whatever
    /// the answer.
    pub async fn client_credentials(
        &self,
        req: &TokenRequest,
        timeout: Duration,
        sent: &mut Vec<Sent>,
    ) -> Result<Token, HttpError> {
        let shown = display_url(&req.token_url);
        let url = url::Url::parse(&req.token_url)
            .map_err(|e| HttpError::Input(format!("`{shown}` is not a valid token URL: {e}")))?;
        self.check_destination(&url)?;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        let scope = req.scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        let mut builder = self.raw().post(url).header("accept", "application/json");
        builder = match req.auth {
            ClientAuth::Basic => {
                builder.basic_auth(form_encode(&req.client_id), Some(form_encode(&req.client_secret)))
            }
            ClientAuth::Body => {
                form.push(("client_id", &req.client_id));
                form.push(("client_secret", &req.client_secret));
                builder
            }
        };
        let request = builder.form(&form).build().map_err(|e| self.failed("POST", &shown, &e))?;
        let host = request.url().host_str().unwrap_or_default().to_owned();
        let bytes = request_size(&request);
        let send = async {
            let resp = self.raw().execute(request).await.map_err(|e| self.failed("POST", &shown, &e))?;
            sent.push(Sent { host, bytes, connections: vec![req.connection.clone()] });
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(|e| self.failed("POST", &shown, &e))?;
            Ok::<_, HttpError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(timeout, send)
            .await
            .map_err(|_| HttpError::Timeout(format!("the token request to {shown} timed out")))??;
        let what = format!("connection `{}`: the token endpoint {shown}", req.connection);
        if !(200..300).contains(&status) {
            let code = serde_json::from_slice::<ErrorResponse>(&bytes).map(|e| e.error).ok();
            let code: String =
                code.unwrap_or_default().chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
            let message = match code.as_str() {
                "" => format!("{what} answered {status}"),
                code => format!("{what} answered {status} ({code})"),
            };
            return Err(HttpError::Status { status, message, output: serde_json::Value::Null });
        }
        let parsed: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|_| HttpError::Input(format!("{what} did not answer with an access token")))?;
        if parsed.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(HttpError::Input(format!("{what} issued a token that is not a bearer token")));
        }
        Ok(Token {
            access_token: Zeroizing::new(parsed.access_token),
            expires_in: parsed.expires_in.map(Duration::from_secs),
        })
    }
}

/// Client ids and secrets are form-encoded before they go into HTTP Basic (RFC 6749, 2.3.1).
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
