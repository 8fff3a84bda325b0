//! Server settings, in layers: built-in defaults, then `steward.toml`, then `STEWARD_*`
//! environment variables, then command-line flags (each layer overrides the ones before).
//!
//! [`Settings`] lists every option once: clap reads flags and environment variables into it,
//! serde reads the file into it, and [`Settings::resolve`] fills what is left with defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::rate_limit::Rate;

/// Options of `steward serve`. Every field is optional here; defaults apply last.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address and port to listen on [default: 127.0.0.1:8080]. Bind to a public address
    /// only behind TLS.
    #[arg(long, env = "STEWARD_BIND")]
    pub bind: Option<SocketAddr>,
    /// The URL people use to reach this server (https://steward.example.com); an https URL
    /// makes session cookies Secure.
    #[arg(long, env = "STEWARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The largest request body accepted, in bytes [default: 1048576]; larger ones get 413.
    #[arg(long, env = "STEWARD_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// How long a request may take before it is answered with 408, e.g. 30s [default: 30s].
    #[arg(long, env = "STEWARD_REQUEST_TIMEOUT", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub request_timeout: Option<Duration>,
    /// How long a login session lasts, e.g. 14d [default: 14d].
    #[arg(long, env = "STEWARD_SESSION_TTL", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub session_ttl: Option<Duration>,
    /// Failed logins allowed per account and per client address in 15 minutes [default: 5
    /// per account, 4 times as many per address].
    #[arg(long, env = "STEWARD_LOGIN_ATTEMPTS")]
    pub login_attempts: Option<usize>,
    /// Runs the executor drives at once in this process [default: 256].
    #[arg(long, env = "STEWARD_MAX_RUNS")]
    pub max_runs: Option<usize>,
    /// How long in-flight steps may take to reach a committed point on shutdown [default: 30s].
    #[arg(long, env = "STEWARD_DRAIN", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "de_duration")]
    pub drain: Option<Duration>,
    /// API requests allowed per client address, as a burst that refills evenly: 100/s,
    /// 6000/min, or off [default: 100/s]. Refused requests get 429 with Retry-After.
    #[arg(long, env = "STEWARD_RATE_LIMIT_ADDRESS")]
    #[serde(default, deserialize_with = "de_parsed")]
    pub rate_limit_address: Option<Rate>,
    /// API requests allowed per API token, like --rate-limit-address [default: 50/s].
    #[arg(long, env = "STEWARD_RATE_LIMIT_TOKEN")]
    #[serde(default, deserialize_with = "de_parsed")]
    pub rate_limit_token: Option<Rate>,
    /// Deliveries allowed per webhook, like --rate-limit-address [default: 200/s].
    #[arg(long, env = "STEWARD_RATE_LIMIT_WEBHOOK")]
    #[serde(default, deserialize_with = "de_parsed")]
    pub rate_limit_webhook: Option<Rate>,
    /// Addresses of reverse proxies whose X-Forwarded-For header names the client, comma
    /// separated [default: none]. Other peers' X-Forwarded-For is ignored.
    #[arg(long, env = "STEWARD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<IpAddr>>,
}

/// Settings with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bind: SocketAddr,
    pub public_url: Option<String>,
    pub secure_cookies: bool,
    pub body_limit: usize,
    pub request_timeout: Duration,
    pub session_ttl: Duration,
    pub login_attempts: usize,
    pub max_runs: usize,
    pub drain: Duration,
    pub rate_limit_address: Rate,
    pub rate_limit_token: Rate,
    pub rate_limit_webhook: Rate,
    pub trusted_proxies: Vec<IpAddr>,
}

impl Settings {
    /// Reads a `steward.toml`; a missing file is an empty layer unless `required`.
    pub fn from_file(path: &Path, required: bool) -> Result<Settings, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Settings::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// `self` over `lower`: each option set here wins.
    pub fn over(self, lower: Settings) -> Settings {
        Settings {
            bind: self.bind.or(lower.bind),
            public_url: self.public_url.or(lower.public_url),
            body_limit: self.body_limit.or(lower.body_limit),
            request_timeout: self.request_timeout.or(lower.request_timeout),
            session_ttl: self.session_ttl.or(lower.session_ttl),
            login_attempts: self.login_attempts.or(lower.login_attempts),
            max_runs: self.max_runs.or(lower.max_runs),
            drain: self.drain.or(lower.drain),
            rate_limit_address: self.rate_limit_address.or(lower.rate_limit_address),
            rate_limit_token: self.rate_limit_token.or(lower.rate_limit_token),
            rate_limit_webhook: self.rate_limit_webhook.or(lower.rate_limit_webhook),
            trusted_proxies: self.trusted_proxies.or(lower.trusted_proxies),
        }
    }

    /// Applies the defaults and checks the result.
    pub fn resolve(self) -> Result<Config, String> {
        let public_url = self.public_url.map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!("public_url must start with http:// or https://, not `{url}`"));
        }
        let config = Config {
            bind: self.bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            secure_cookies: public_url.as_deref().is_some_and(|u| u.starts_with("https://")),
            public_url,
            body_limit: self.body_limit.unwrap_or(1024 * 1024),
            request_timeout: self.request_timeout.unwrap_or(Duration::from_secs(30)),
            session_ttl: self.session_ttl.unwrap_or(Duration::from_secs(14 * 24 * 3600)),
            login_attempts: self.login_attempts.unwrap_or(5),
            max_runs: self.max_runs.unwrap_or(256),
            drain: self.drain.unwrap_or(Duration::from_secs(30)),
            rate_limit_address: self.rate_limit_address.unwrap_or(Rate::per_second(100)),
            rate_limit_token: self.rate_limit_token.unwrap_or(Rate::per_second(50)),
            rate_limit_webhook: self.rate_limit_webhook.unwrap_or(Rate::per_second(200)),
            trusted_proxies: self.trusted_proxies.unwrap_or_default(),
        };
        if config.body_limit < 1024 {
            return Err("body_limit must be at least 1024 bytes".into());
        }
        if config.max_runs == 0 || config.login_attempts == 0 {
            return Err("max_runs and login_attempts must be at least 1".into());
        }
        Ok(config)
    }
}

impl Default for Config {
    fn default() -> Self {
        Settings::default().resolve().unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 30s or 5m: {e}"))
}

fn de_parsed<'de, D: serde::Deserializer<'de>, T: std::str::FromStr<Err = String>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|s| s.parse()).transpose().map_err(serde::de::Error::custom)
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    text.map(|s| parse_duration(&s)).transpose().map_err(serde::de::Error::custom)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order_and_defaults_fill_the_rest() {
        let file: Settings =
            toml::from_str("bind = \"0.0.0.0:9000\"\nbody_limit = 2048\ndrain = \"5s\"").unwrap();
        let flags = Settings { body_limit: Some(4096), ..Settings::default() };
        let config = flags.over(file).resolve().unwrap();
        assert_eq!(config.bind, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.body_limit, 4096);
        assert_eq!(config.drain, Duration::from_secs(5));
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert!(!config.secure_cookies);
        assert_eq!(
            Config::default().bind,
            "127.0.0.1:8080".parse().unwrap(),
            "loopback unless told otherwise"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let unknown = toml::from_str::<Settings>("bnid = \"x\"").unwrap_err().to_string();
        assert!(unknown.contains("bnid"), "{unknown}");
        let duration = toml::from_str::<Settings>("drain = \"soon\"").unwrap_err().to_string();
        assert!(duration.contains("soon"), "{duration}");
        let url = Settings { public_url: Some("ftp://x".into()), ..Settings::default() }.resolve();
        assert!(url.unwrap_err().contains("public_url"));
        let https = Settings { public_url: Some("https://s.example.com/".into()), ..Settings::default() };
        let https = https.resolve().unwrap();
        assert!(https.secure_cookies);
        assert_eq!(https.public_url.as_deref(), Some("https://s.example.com"));
        let rate = toml::from_str::<Settings>("rate_limit_token = \"lots\"").unwrap_err().to_string();
        assert!(rate.contains("`lots` is not a rate"), "{rate}");
    }

    #[test]
    fn rate_limits_and_proxies_come_from_the_file() {
        let file: Settings = toml::from_str(
            "rate_limit_address = \"off\"\nrate_limit_webhook = \"600/min\"\ntrusted_proxies = [\"127.0.0.1\", \"::1\"]",
        )
        .unwrap();
        let config = file.resolve().unwrap();
        assert_eq!(config.rate_limit_address, Rate::Off);
        assert_eq!(config.rate_limit_webhook.to_string(), "600/min");
        assert_eq!(config.rate_limit_token, Rate::per_second(50), "the default");
        assert_eq!(config.trusted_proxies.len(), 2);
    }
}
