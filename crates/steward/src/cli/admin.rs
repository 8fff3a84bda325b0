//! `steward admin ...` and `steward audit verify`: administration on the database directly,
//! for the first account, break-glass access and checks. Each change is audited.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;
use steward_auth::token::{Kind, Token};
use steward_auth::{Permissions, Role, password};
use steward_engine::Timestamp;
use steward_store::{ApiToken, Deleter, NewAuditEvent, NewUser, ServerStore};

use crate::local::Location;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account and make it a member of a workspace (created if missing).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of standard input (never from the command
        /// line, where other users of the machine could see it).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The workspace to join.
        #[arg(long, default_value = "default")]
        workspace: String,
        /// The role in it.
        #[arg(long, default_value = "owner")]
        role: Role,
    },
    /// Create an API token for an account in a workspace; it is printed once.
    CreateToken {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long)]
        name: String,
        /// Comma-separated permissions (default: all of the account's role).
        #[arg(long, value_delimiter = ',')]
        permissions: Option<Vec<String>>,
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    /// Write everything held about an account (its data, memberships, sessions and tokens
    /// without secrets, and its audit entries) to a new JSON file.
    ExportUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Delete an account and its personal data (account, sessions, API tokens, memberships,
    /// invitations; see docs/deletion.md) and print the deletion receipt as JSON. Refused
    /// while the account is the only owner of a workspace that has other members.
    DeleteUser {
        #[arg(long)]
        email: String,
    },
    /// Re-wrap every workspace's data key with a new master key (secrets are not touched),
    /// then put the new key in the key file. Servers go on with the data keys they hold;
    /// restart them one at a time to load the new key.
    RotateMasterKey {
        /// Read the new key from standard input (needed when the key comes from
        /// STEWARD_MASTER_KEY); otherwise a new key is generated.
        #[arg(long)]
        new_key_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exits 1 naming the first broken link.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

pub async fn command(location: &Location, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    let store = location.open_all().await?;
    let now = super::runs::now();
    match cmd {
        AdminCommand::RotateMasterKey { new_key_stdin } => {
            let id = super::keys::rotate(location, store.clone(), new_key_stdin).await?;
            let event = NewAuditEvent {
                workspace: None,
                actor: "system:cli".into(),
                action: "master_key.rotated".into(),
                object_type: "master_key".into(),
                object_id: Some(id),
                source: None,
                details: json!({}),
                now,
            };
            store.append_audit(event).await?;
        }
        AdminCommand::ExportUser { email, out } => super::export::export_user(&*store, &email, &out).await?,
        AdminCommand::DeleteUser { email } => delete_user(&*store, &email, now).await?,
        AdminCommand::CreateUser { email, name, workspace, role, .. } => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
            let secret = line.trim_end_matches(['\r', '\n']);
            let hash = password::hash(secret).map_err(|e| anyhow::anyhow!("{e}"))?;
            let new = NewUser { id: uuid::Uuid::now_v7().to_string(), email, name, password_hash: hash, now };
            let user = store.create_user(new).await?;
            match store.workspace(&workspace).await {
                Ok(_) => store.set_member(&workspace, &user.id, role, now).await?,
                Err(steward_store::Error::NotFound(_)) => {
                    if role != Role::Owner {
                        bail!(
                            "workspace `{workspace}` does not exist; its first member must be --role owner"
                        );
                    }
                    store.create_workspace(&workspace, &workspace, &user.id, now).await?;
                }
                Err(e) => return Err(e.into()),
            }
            audit(&*store, &workspace, "user.created", ("user", &user.id), json!({ "role": role })).await?;
            eprintln!("created {} ({}) as {role} of workspace {workspace}", user.email, user.id);
        }
        AdminCommand::CreateToken { email, workspace, name, permissions, expires_in_days } => {
            let (user, _) =
                store.user_for_login(&email).await?.with_context(|| format!("no account {email}"))?;
            let role = store
                .role(&workspace, &user.id)
                .await?
                .with_context(|| format!("{email} is not a member of {workspace}"))?;
            let wanted = match permissions {
                Some(names) => {
                    Permissions::parse(names.iter().map(|n| n.trim())).map_err(|e| anyhow::anyhow!("{e}"))?
                }
                None => role.permissions(),
            };
            if !role.permissions().covers(wanted) {
                bail!("a {role} cannot hold all of these permissions");
            }
            let secret =
                Token::generate(Kind::ApiToken).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let token = ApiToken {
                id: uuid::Uuid::now_v7().to_string(),
                digest: secret.digest(),
                workspace_id: workspace.clone(),
                user_id: user.id,
                name,
                permissions: wanted,
                created_at: now,
                expires_at: expires_in_days.map(|d| now.plus_millis(d * 24 * 3600 * 1000)),
                last_used_at: None,
                revoked_at: None,
            };
            store.create_token(&token).await?;
            audit(&*store, &workspace, "token.created", ("token", &token.id), json!({ "name": token.name }))
                .await?;
            println!("{}", secret.reveal());
            eprintln!("this token is shown once; store it now");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `admin delete-user`: the receipt on standard output, what happened on standard error. The
/// store records the receipt in the audit log with the deletion.
async fn delete_user(store: &dyn ServerStore, email: &str, now: Timestamp) -> anyhow::Result<()> {
    let (user, _) = store.user_for_login(email).await?.with_context(|| format!("no account {email}"))?;
    let by = Deleter { actor: "system:cli".into(), source: None };
    let deletion = store.delete_user(&user.id, &by, now).await?;
    super::print_json(&deletion.receipt)?;
    eprintln!(
        "deleted account {} ({} rows); the receipt is in the audit log",
        user.id,
        deletion.receipt.rows()
    );
    for workspace in &deletion.workspaces_deleted {
        eprintln!(
            "workspace {workspace} had no other member and was deleted with it; it is purged in 30 days"
        );
    }
    Ok(())
}

async fn audit(
    store: &dyn ServerStore,
    workspace: &str,
    action: &str,
    object: (&str, &str),
    details: serde_json::Value,
) -> anyhow::Result<()> {
    let event = NewAuditEvent {
        workspace: Some(workspace.to_owned()),
        actor: "system:cli".into(),
        action: action.into(),
        object_type: object.0.into(),
        object_id: Some(object.1.into()),
        source: None,
        details,
        now: super::runs::now(),
    };
    store.append_audit(event).await?;
    Ok(())
}

pub async fn audit_command(location: &Location, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { json } = cmd;
    let store = location.open_all().await?;
    let result = steward_store::verify_chain(&*store).await?;
    if json {
        let out = match &result {
            Ok(r) => json!({ "intact": true, "checked": r.checked, "pruned": r.pruned }),
            Err(b) => json!({ "intact": false, "broken_at": b.seq, "problem": b.problem }),
        };
        super::print_json(&out)?;
    }
    match result {
        Ok(report) => {
            for note in steward_server::pruner::pruned_notes(&report) {
                eprintln!("{note}");
            }
            eprintln!("audit log intact: {} entries checked", report.checked);
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            eprintln!("audit log broken at entry {}: {}", b.seq, b.problem);
            Ok(ExitCode::from(1))
        }
    }
}
