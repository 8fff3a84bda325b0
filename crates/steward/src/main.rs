//! The `steward` binary: parses the command line and wires the store, the executor and the
//! command that was asked for. It holds no logic of its own beyond that wiring and printing.

mod cli;
mod local;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "steward",
    version,
    about = "Delegate work to durable flows and agents, and keep your data."
)]
struct Args {
    /// Where the embedded SQLite database lives.
    #[arg(long, global = true, env = "STEWARD_DATA_DIR", default_value = ".steward")]
    data_dir: PathBuf,
    /// A PostgreSQL URL (postgres://...) to use instead of the embedded SQLite database.
    #[arg(long, global = true, env = "STEWARD_DATABASE_URL")]
    database_url: Option<String>,
    /// A Steward server to talk to instead of the local database (flows, runs, agents,
    /// approvals and usage commands).
    #[arg(long, global = true, env = "STEWARD_URL")]
    server: Option<String>,
    /// The API token for --server.
    #[arg(long, global = true, env = "STEWARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The workspace on --server.
    #[arg(long, global = true, env = "STEWARD_WORKSPACE", default_value = "default")]
    workspace: String,
    /// Private, loopback or link-local ranges that flows' requests may reach (comma-separated,
    /// such as `10.0.0.0/8,fd00::/8`); such addresses are refused by default.
    #[arg(long, global = true, env = "STEWARD_EGRESS_ALLOW", value_delimiter = ',')]
    egress_allow: Vec<String>,
    /// Log format on stderr.
    #[arg(long, global = true, env = "STEWARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a flow file on the local store and print its output.
    Run(cli::run::RunArgs),
    /// Check flow files without running them.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a JSON Schema.
    Schema {
        #[arg(value_parser = ["flow", "openapi"])]
        what: String,
    },
    /// Manage stored flows.
    #[command(subcommand)]
    Flows(cli::flows::FlowsCommand),
    /// Manage agents and run them.
    #[command(subcommand)]
    Agents(cli::agents::AgentsCommand),
    /// Steps waiting for a person's decision.
    #[command(subcommand)]
    Approvals(cli::approvals::ApprovalsCommand),
    /// Agents' usage by day: tokens, cost, model calls and tool calls.
    Usage(cli::approvals::UsageArgs),
    /// Inspect and control runs.
    #[command(subcommand)]
    Runs(cli::runs::RunsCommand),
    /// Manage a server's connections (credentials for outside services); needs --server.
    #[command(subcommand)]
    Connections(cli::connections::ConnectionsCommand),
    /// Execute queued runs until stopped (scale out against a shared PostgreSQL database).
    Worker(cli::worker::WorkerArgs),
    /// Serve the HTTP API and execute runs, on one port.
    Serve(cli::serve::ServeArgs),
    /// Export a workspace of the local database (--workspace) as JSON, CSV or SQL files.
    Export(cli::export::ExportArgs),
    /// Load a JSON export into the local database as a new workspace (named by --workspace
    /// on the command line, else as exported).
    Import(cli::export::ImportArgs),
    /// Administer accounts directly on the database.
    #[command(subcommand)]
    Admin(cli::admin::AdminCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(cli::admin::AuditCommand),
    /// Apply the retention policies on the local database (see docs/retention.md).
    #[command(subcommand)]
    Retention(cli::retention::RetentionCommand),
}

fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let named = matches.value_source("workspace") == Some(clap::parser::ValueSource::CommandLine);
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    local::init_logging(&args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let location = local::Location {
        data_dir: args.data_dir,
        database_url: args.database_url,
        egress_allow: args.egress_allow,
    };
    let workspace = args.workspace.clone();
    let remote = args.server.map(|server| cli::remote::Remote {
        server,
        token: args.token,
        workspace: args.workspace,
    });
    let result = runtime.block_on(async move {
        match args.command {
            Command::Run(a) => cli::run::run(&location, a).await,
            Command::Validate { files } => cli::flows::validate(&files),
            Command::Schema { what } if what == "openapi" => {
                println!("{}", steward_server::openapi_json());
                Ok(ExitCode::SUCCESS)
            }
            Command::Schema { .. } => cli::flows::schema(),
            Command::Flows(c) => match &remote {
                Some(r) => cli::remote::flows(r, c).await,
                None => cli::flows::command(&location, c).await,
            },
            Command::Agents(c) => match &remote {
                Some(r) => cli::agents_remote::agents(r, c).await,
                None => cli::agents::command(&location, c).await,
            },
            Command::Approvals(c) => match &remote {
                Some(r) => cli::agents_remote::approvals(r, c).await,
                None => cli::approvals::approvals(&location, c).await,
            },
            Command::Usage(a) => match &remote {
                Some(r) => cli::agents_remote::usage(r, a).await,
                None => cli::approvals::usage(&location, a).await,
            },
            Command::Connections(c) => cli::connections::command(remote.as_ref(), c).await,
            Command::Runs(c) => match &remote {
                Some(r) => cli::remote::runs(r, c).await,
                None => cli::runs::command(&location, c).await,
            },
            Command::Worker(a) => cli::worker::run(&location, a).await,
            Command::Serve(a) => cli::serve::run(&location, a).await,
            Command::Export(a) => cli::export::export(&location, &workspace, a).await,
            Command::Import(a) => cli::export::import(&location, named.then_some(&*workspace), a).await,
            Command::Admin(c) => cli::admin::command(&location, c).await,
            Command::Audit(c) => cli::admin::audit_command(&location, c).await,
            Command::Retention(c) => {
                cli::retention::command(&location, named.then_some(&*workspace), c).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
