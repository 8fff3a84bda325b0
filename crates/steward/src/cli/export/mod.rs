//! `steward export`, `steward import` and `steward admin export-user`: a workspace of the
//! local database out to files and back in, and one person's data.
//!
//! Rows go from the database to the files a page at a time ([`steward_store::Pages`]) and
//! back a line at a time, so neither direction holds a table in memory. The file formats are
//! described in `docs/export.md`.

mod csv;
mod import;
mod json;
mod progress;
mod sql;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_store::{Counts, FORMAT, NewAuditEvent, Pages, Row, ServerStore, Table};

pub use import::{ImportArgs, import};

use crate::local::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `manifest.json` and one `<table>.jsonl` per table; `steward import` reads it.
    Json,
    /// `manifest.json` and one `<table>.csv` per table, with a header row.
    Csv,
    /// One `workspace.sql` that loads into an empty SQLite or PostgreSQL database.
    Sql,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Sql => "sql",
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// The directory to write; created if missing, and refused unless empty.
    #[arg(long)]
    out: PathBuf,
}

/// What `manifest.json` says about an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub workspace: ManifestWorkspace,
    pub exported_at: i64,
    /// Rows per table, as written.
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestWorkspace {
    pub id: String,
    pub name: String,
}

/// Where rows of one export format go.
trait Sink {
    fn begin(&mut self, table: Table) -> anyhow::Result<()>;
    fn row(&mut self, table: Table, row: &Row) -> anyhow::Result<()>;
    fn end(&mut self, table: Table) -> anyhow::Result<()>;
    /// Completes the export; the manifest is written last, so its presence marks a finished
    /// export.
    fn finish(self: Box<Self>, manifest: &Manifest) -> anyhow::Result<()>;
}

/// `steward export`: writes `workspace` in `args.format` to `args.out`. The export is
/// audited (format and row counts only) before anything is written.
pub async fn export(location: &Location, workspace: &str, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let store = location.open_all().await?;
    let ws = match store.workspace(workspace).await {
        Err(steward_store::Error::NotFound(_)) => {
            bail!("there is no workspace `{workspace}` in this database")
        }
        other => other?,
    };
    let counts = store.export_counts(workspace).await?;
    prepare_dir(&args.out)?;
    let details = json!({ "format": args.format.as_str(), "counts": counts });
    audit(&*store, workspace, "workspace.exported", details).await?;
    let mut manifest = Manifest {
        format: FORMAT.to_owned(),
        workspace: ManifestWorkspace { id: ws.id, name: ws.name },
        exported_at: super::runs::now().0,
        counts: Counts::new(),
    };
    let mut sink: Box<dyn Sink> = match args.format {
        Format::Json => Box::new(json::JsonSink::new(&args.out)),
        Format::Csv => Box::new(csv::CsvSink::new(&args.out)),
        Format::Sql => Box::new(sql::SqlSink::create(&args.out, &manifest)?),
    };
    let bars = progress::Bars::new();
    for table in Table::ALL {
        let bar = bars.table(*table, counts.get(table.name()).copied().unwrap_or(0));
        sink.begin(*table)?;
        let mut pages = Pages::new(&*store, workspace, *table);
        let mut n = 0;
        while let Some(page) = pages.next().await? {
            page.iter().try_for_each(|row| sink.row(*table, row))?;
            n += page.len() as u64;
            bar.inc(page.len() as u64);
        }
        sink.end(*table)?;
        bar.finish();
        manifest.counts.insert(table.name().to_owned(), n);
    }
    sink.finish(&manifest)?;
    let total: u64 = manifest.counts.values().sum();
    eprintln!("exported workspace {workspace}: {total} rows to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Creates `dir`, or accepts it when it is empty: an export never mixes with other files.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut entries = std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if entries.next().is_some() {
        bail!("{} is not empty: export into a new or empty directory", dir.display());
    }
    Ok(())
}

/// A value as text, for the text formats (CSV, SQL): `None` for `null`.
fn plain(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

async fn audit(
    store: &dyn ServerStore,
    workspace: &str,
    action: &str,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    let event = NewAuditEvent {
        workspace: Some(workspace.to_owned()),
        actor: "system:cli".into(),
        action: action.into(),
        object_type: "workspace".into(),
        object_id: Some(workspace.to_owned()),
        source: None,
        details,
        now: super::runs::now(),
    };
    store.append_audit(event).await.context("cannot write the audit entry")?;
    Ok(())
}

/// `steward admin export-user`: everything held about the account with `email`, as one JSON
/// file readable only by its owner (it is personal data).
pub async fn export_user(store: &dyn ServerStore, email: &str, out: &Path) -> anyhow::Result<()> {
    let (user, _) = store.user_for_login(email).await?.with_context(|| format!("no account {email}"))?;
    let now = super::runs::now();
    let event = NewAuditEvent {
        workspace: None,
        actor: "system:cli".into(),
        action: "user.data_exported".into(),
        object_type: "user".into(),
        object_id: Some(user.id.clone()),
        source: None,
        details: json!({ "format": steward_store::PERSONAL_FORMAT }),
        now,
    };
    store.append_audit(event).await.context("cannot write the audit entry")?;
    let data = steward_store::personal_data(store, &user.id, now).await?;
    let mut file = private_file(out)?;
    serde_json::to_writer_pretty(&mut file, &data)?;
    std::io::Write::write_all(&mut file, b"\n")?;
    eprintln!("wrote the data held about {} to {}", user.email, out.display());
    Ok(())
}

/// A new file only its owner can read.
fn private_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))
}
