//! `steward-bench`: measures what a durable step costs, how many runs an executor finishes per
//! second, how much memory a worker needs while many runs wait, how fast `steward serve`
//! answers a sync webhook, and what the durable agent loop adds per model turn and tool call.
//!
//! Every scenario prints one JSON line per repetition on stdout, then a summary line with the
//! median, minimum and maximum of every number the repetitions reported. Progress goes to
//! stderr. `bench/run.sh` runs every scenario on SQLite and PostgreSQL; `table` turns the JSON
//! lines into the Markdown table of `docs/benchmarks.md`.

mod agent_loop;
mod commit;
mod fixture;
mod http;
mod machine;
mod process;
mod prune;
mod report;
mod step_overhead;
mod throughput;
mod timed;
mod waiting_memory;
mod watch;
mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "steward-bench", about = "Benchmarks of the Steward executor and stores.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Microseconds per durable step: one run of a chain of `transform` steps.
    StepOverhead(RunArgs),
    /// Microseconds per store `append` (commit) of 1 and of 3 events, without an executor.
    Commit(RunArgs),
    /// Runs per second: N queued runs of a 3-step flow, then one executor finishes them.
    Throughput(RunArgs),
    /// Peak and resident memory of a `steward worker` process moving N runs to `waiting`.
    WaitingMemory(RunArgs),
    /// Requests per second, p50 and p99 of a sync webhook running a 3-step flow, driven over
    /// loopback against a `steward serve` process, and the server's peak memory.
    Webhook(RunArgs),
    /// Seconds the retention pruner of `steward serve` takes to delete N expired runs (default
    /// 1,000,000), and the p99 latency of a webhook load before and while it does.
    Prune(RunArgs),
    /// Microseconds the durable agent loop adds per model turn and per tool call: an agent
    /// against a zero-latency fake provider on loopback, N tool calls then an answer, minus
    /// the provider's own round trip.
    AgentLoop(RunArgs),
    /// Prints a JSON line describing this machine and its current load average.
    Machine {
        /// A label for the line, such as `start` or `end`.
        #[arg(default_value = "now")]
        when: String,
    },
    /// Prints a Markdown table of the summary lines in JSON-lines result files.
    Table {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// The database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Db {
    /// A SQLite file in a new temporary directory.
    Sqlite,
    /// A new database on the PostgreSQL server of the tests (`STEWARD_TEST_DATABASE_URL`, or
    /// postgres://postgres@127.0.0.1:5432/test), dropped afterwards.
    Postgres,
}

impl Db {
    pub fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        }
    }
}

/// Settings shared by the scenarios; each has its own defaults for what is left out.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub db: Db,
    /// Repetitions, each on a fresh store (defaults: step-overhead 7, commit 5, throughput 5,
    /// waiting-memory 3, webhook 3, prune 3, agent-loop 5).
    #[arg(long)]
    pub reps: Option<usize>,
    /// Steps in the chain (step-overhead).
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Tool calls of the long run (agent-loop): N turns calling a tool, then one answering.
    #[arg(long, default_value_t = 50)]
    pub turns: usize,
    /// Runs to queue (defaults: throughput 1000, waiting-memory 10000); appends for commit
    /// (default 2000); expired runs to prune (default 1000000).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Runs an executor drives at once (throughput, waiting-memory).
    #[arg(long, default_value_t = 256)]
    pub max_runs: usize,
    /// Connection counts of the webhook load phases, one phase each.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub connections: Vec<usize>,
    /// Seconds each webhook load phase lasts.
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// The `steward` binary for waiting-memory and webhook (default: next to this binary).
    #[arg(long)]
    pub steward_bin: Option<PathBuf>,
    /// Webhook only: what the vault adds. `none`: the 3-transform flow in a workspace without
    /// connections; `workspace`: the same with 20 connections, so every payload is scanned for
    /// their secrets; `http`: a flow with an HTTP step to a loopback server; `connection`: the
    /// same step carrying a bearer connection (opened, attached, scanned), with the 20 too.
    #[arg(long, value_enum, default_value = "none")]
    pub secrets: webhook::Secrets,
    /// Gives up on a repetition after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

impl RunArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::StepOverhead(args) => {
            let reps = args.reps.unwrap_or(7);
            report::repeat("step-overhead", &args, reps, |rep| step_overhead::rep(&args, rep)).await
        }
        Command::Commit(args) => {
            let reps = args.reps.unwrap_or(5);
            report::repeat("commit", &args, reps, |rep| commit::rep(&args, rep)).await
        }
        Command::Throughput(args) => {
            let reps = args.reps.unwrap_or(5);
            report::repeat("throughput", &args, reps, |rep| throughput::rep(&args, rep)).await
        }
        Command::WaitingMemory(args) => {
            let reps = args.reps.unwrap_or(3);
            report::repeat("waiting-memory", &args, reps, |rep| waiting_memory::rep(&args, rep)).await
        }
        Command::Webhook(args) => {
            let reps = args.reps.unwrap_or(3);
            let scenario = args.secrets.scenario();
            report::repeat(scenario, &args, reps, |rep| webhook::rep(&args, rep)).await
        }
        Command::Prune(args) => {
            let reps = args.reps.unwrap_or(3);
            report::repeat("prune", &args, reps, |rep| prune::rep(&args, rep)).await
        }
        Command::AgentLoop(args) => {
            let reps = args.reps.unwrap_or(5);
            report::repeat("agent-loop", &args, reps, |rep| agent_loop::rep(&args, rep)).await
        }
        Command::Machine { when } => {
            println!("{}", machine::describe(&when));
            Ok(())
        }
        Command::Table { files } => report::table(&files),
    }
}
