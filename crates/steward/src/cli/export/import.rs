//! `steward import`: a JSON export directory into the local database, as a new workspace.
//!
//! The manifest is read and checked first (format version, counts); then the store pulls
//! rows file by file, line by line, and writes them in one transaction, so a bad line
//! anywhere leaves the database as it was.

use std::fs::File;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use async_trait::async_trait;
use clap::Args;
use indicatif::ProgressBar;
use serde_json::json;
use steward_store::{Error, FORMAT, Import, ImportReport, ImportRows, Row, Table};

use super::Manifest;
use super::json::{MANIFEST, table_file};
use super::progress::Bars;
use crate::local::Location;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export directory (`steward export --format json`).
    #[arg(long = "in", value_name = "DIR")]
    input: PathBuf,
}

/// `steward import`: loads the export in `args.input` as the workspace `rename` (the global
/// `--workspace`, when given on the command line) or under its exported id.
pub async fn import(location: &Location, rename: Option<&str>, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let manifest = read_manifest(&args.input)?;
    let workspace = rename.unwrap_or(&manifest.workspace.id).to_owned();
    let store = location.open_all().await?;
    match store.workspace(&workspace).await {
        Ok(_) => bail!(
            "workspace `{workspace}` exists in this database: import under another name with --workspace"
        ),
        Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let import = Import {
        workspace: workspace.clone(),
        actor: "system:cli".into(),
        now: super::super::runs::now(),
        details: json!({
            "format": manifest.format,
            "from_workspace": manifest.workspace.id,
            "exported_at": manifest.exported_at,
            "counts": manifest.counts,
        }),
    };
    let mut rows = DirRows::new(&args.input, manifest);
    let report =
        store.import_workspace(&import, &mut rows).await.context("the import failed; nothing was written")?;
    tell(&workspace, &report);
    super::super::print_json(&report)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads and checks `manifest.json`: an export of this format version.
pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} is missing: {} is not a Steward export (or its export did not finish)",
            path.display(),
            dir.display()
        ),
        other => other.with_context(|| format!("cannot read {}", path.display()))?,
    };
    let format = serde_json::from_str::<serde_json::Value>(&text)
        .with_context(|| format!("{} is not JSON", path.display()))?["format"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if format != FORMAT {
        bail!("{} has the unknown format `{format}`; this steward reads {FORMAT}", path.display());
    }
    serde_json::from_str(&text).with_context(|| format!("{} is not a valid manifest", path.display()))
}

/// What the operator must do now.
fn tell(workspace: &str, report: &ImportReport) {
    let total: u64 = report.imported.values().sum();
    eprintln!("imported workspace {workspace}: {total} rows");
    for email in &report.skipped_members {
        eprintln!(
            "skipped member {email}: no account here; add them with \
             `steward admin create-user --email {email} --workspace {workspace} --role ROLE --password-stdin`"
        );
    }
    for name in &report.connections_to_rotate {
        eprintln!(
            "connection {name} came back revoked without its secret (secrets are never exported): \
             rotate it with `steward connections rotate {name}` to use it again"
        );
    }
    if !report.revoked_webhooks.is_empty() {
        eprintln!(
            "{} webhook(s) came back revoked (their URLs and signing secrets are not exported): \
             create new webhooks for the flows that need them",
            report.revoked_webhooks.len()
        );
    }
}

/// Rows of an export directory: each table's `.jsonl` file in turn, checked against the
/// manifest's counts.
struct DirRows {
    dir: PathBuf,
    manifest: Manifest,
    bars: Bars,
    /// The table being read, its lines, rows read so far and its bar.
    current: Option<(Table, Lines<BufReader<File>>, u64, ProgressBar)>,
    next: usize,
}

impl DirRows {
    fn new(dir: &Path, manifest: Manifest) -> Self {
        Self { dir: dir.to_owned(), manifest, bars: Bars::new(), current: None, next: 0 }
    }

    fn expected(&self, table: Table) -> u64 {
        self.manifest.counts.get(table.name()).copied().unwrap_or(0)
    }

    /// Opens the next table's file; false when every table was read.
    fn open_next(&mut self) -> Result<bool, Error> {
        let Some(table) = Table::ALL.get(self.next).copied() else { return Ok(false) };
        self.next += 1;
        let path = table_file(&self.dir, table);
        // An export made before this table existed has neither its file nor its count.
        if !path.exists() && !self.manifest.counts.contains_key(table.name()) {
            return self.open_next();
        }
        let file = File::open(&path).map_err(|e| {
            Error::Invalid(format!("cannot open {} ({e}): the export is incomplete", path.display()))
        })?;
        let bar = self.bars.table(table, self.expected(table));
        self.current = Some((table, BufReader::new(file).lines(), 0, bar));
        Ok(true)
    }

    /// Closes the current table, checking it held as many rows as the manifest says.
    fn close(&mut self) -> Result<(), Error> {
        if let Some((table, _, read, bar)) = self.current.take() {
            bar.finish();
            let expected = self.expected(table);
            if read != expected {
                let path = table_file(&self.dir, table);
                return Err(Error::Invalid(format!(
                    "{} has {read} rows but the manifest says {expected}",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ImportRows for DirRows {
    async fn next_row(&mut self) -> Result<Option<(Table, Row)>, Error> {
        loop {
            let Some((table, lines, read, bar)) = &mut self.current else {
                if !self.open_next()? {
                    return Ok(None);
                }
                continue;
            };
            let Some(line) = lines.next() else {
                self.close()?;
                continue;
            };
            let where_ = || format!("{} line {}", table_file(&self.dir, *table).display(), *read + 1);
            let line = line.map_err(|e| Error::Invalid(format!("cannot read {}: {e}", where_())))?;
            let row: Row = serde_json::from_str(&line)
                .map_err(|e| Error::Invalid(format!("{} is not a JSON object: {e}", where_())))?;
            *read += 1;
            bar.inc(1);
            return Ok(Some((*table, row)));
        }
    }
}
