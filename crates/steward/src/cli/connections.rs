//! `steward connections ...`: a server's connections, through its API (`--server`). Secret
//! values are read from standard input or a file, never from the command line, where other
//! users of the machine could see them; nothing prints them back.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::remote::Remote;

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Create a connection.
    Add {
        name: String,
        /// api_key, bearer, basic, headers or oauth2_client_credentials.
        #[arg(long)]
        kind: String,
        /// A host the secret may be sent to (repeat for more), such as api.github.com.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// api_key: the header that carries the key.
        #[arg(long)]
        header: Option<String>,
        /// api_key: the query parameter that carries the key.
        #[arg(long)]
        query: Option<String>,
        /// basic: the user name.
        #[arg(long)]
        username: Option<String>,
        /// oauth2_client_credentials: the token endpoint.
        #[arg(long)]
        token_url: Option<String>,
        /// oauth2_client_credentials: the client id.
        #[arg(long)]
        client_id: Option<String>,
        /// oauth2_client_credentials: a scope to ask for (repeat for more).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[command(flatten)]
        secret: SecretFrom,
        #[arg(long)]
        json: bool,
    },
    /// List connections (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a connection (never its secret).
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Replace a connection's secret.
    Rotate {
        name: String,
        #[command(flatten)]
        secret: SecretFrom,
    },
    /// Revoke a connection: nothing may use it until it is rotated.
    Revoke { name: String },
    /// Delete a connection (restorable).
    Delete { name: String },
    /// Restore a deleted connection.
    Restore { name: String },
}

/// Where the secret value comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SecretFrom {
    /// Read the secret from standard input.
    #[arg(long)]
    secret_stdin: bool,
    /// Read the secret from a file.
    #[arg(long)]
    secret_file: Option<PathBuf>,
}

impl SecretFrom {
    fn read(&self) -> anyhow::Result<Zeroizing<String>> {
        let mut text = Zeroizing::new(String::new());
        match &self.secret_file {
            Some(path) => {
                std::fs::File::open(path)
                    .and_then(|mut f| f.read_to_string(&mut text))
                    .with_context(|| format!("cannot read the secret from {}", path.display()))?;
            }
            None => {
                std::io::stdin().read_to_string(&mut text).context("cannot read the secret from stdin")?;
            }
        }
        let trimmed = Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_owned());
        if trimmed.is_empty() {
            bail!("the secret is empty");
        }
        Ok(trimmed)
    }
}

pub async fn command(remote: Option<&Remote>, cmd: ConnectionsCommand) -> anyhow::Result<ExitCode> {
    let Some(remote) = remote else {
        bail!("connections are kept by a server: pass --server URL (or set STEWARD_URL)");
    };
    match cmd {
        ConnectionsCommand::Add {
            name,
            kind,
            hosts,
            header,
            query,
            username,
            token_url,
            client_id,
            scopes,
            secret,
            json,
        } => {
            let mut settings = Map::new();
            for (key, value) in [
                ("header", header),
                ("query", query),
                ("username", username),
                ("token_url", token_url),
                ("client_id", client_id),
            ] {
                if let Some(v) = value {
                    settings.insert(key.to_owned(), Value::String(v));
                }
            }
            if !scopes.is_empty() {
                settings.insert("scopes".to_owned(), json!(scopes));
            }
            let secret = secret.read()?;
            let body = json!({ "name": name, "kind": kind, "hosts": hosts, "settings": settings, "secret": secret.as_str() });
            let made = remote.must(Method::POST, "/connections", Some(body)).await?;
            print_one(&made, json)?;
        }
        ConnectionsCommand::List { json } => {
            let list = remote.must(Method::GET, "/connections", None).await?;
            if json {
                super::print_json(&list)?;
            } else {
                println!("{:<24} {:<26} {:<8} HOSTS", "NAME", "KIND", "STATE");
                for c in list.as_array().into_iter().flatten() {
                    let state = if c["revoked_at"].is_null() { "active" } else { "revoked" };
                    println!(
                        "{:<24} {:<26} {:<8} {}",
                        c["name"].as_str().unwrap_or("?"),
                        c["kind"].as_str().unwrap_or("?"),
                        state,
                        hosts_of(c)
                    );
                }
            }
        }
        ConnectionsCommand::Show { name, json } => {
            let c = remote.must(Method::GET, &format!("/connections/{name}"), None).await?;
            print_one(&c, json)?;
        }
        ConnectionsCommand::Rotate { name, secret } => {
            let secret = secret.read()?;
            let body = json!({ "secret": secret.as_str() });
            remote.must(Method::POST, &format!("/connections/{name}/rotate"), Some(body)).await?;
            eprintln!("rotated the secret of connection {name}");
        }
        ConnectionsCommand::Revoke { name } => {
            remote.must(Method::POST, &format!("/connections/{name}/revoke"), None).await?;
            eprintln!("revoked connection {name}");
        }
        ConnectionsCommand::Delete { name } => {
            remote.must(Method::DELETE, &format!("/connections/{name}"), None).await?;
            eprintln!("deleted connection {name} (restorable)");
        }
        ConnectionsCommand::Restore { name } => {
            remote.must(Method::POST, &format!("/connections/{name}/restore"), None).await?;
            eprintln!("restored connection {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn hosts_of(c: &Value) -> String {
    c["hosts"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
}

fn print_one(c: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(c);
    }
    println!("name:     {}", c["name"].as_str().unwrap_or("?"));
    println!("kind:     {}", c["kind"].as_str().unwrap_or("?"));
    println!("hosts:    {}", hosts_of(c));
    println!("settings: {}", c["settings"]);
    println!("revoked:  {}", if c["revoked_at"].is_null() { "no" } else { "yes" });
    Ok(())
}
