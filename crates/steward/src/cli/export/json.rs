//! The JSON format: `<table>.jsonl` (one row object per line) and `manifest.json`, written
//! last.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use steward_store::{Row, Table};

use super::{Manifest, Sink};

pub const MANIFEST: &str = "manifest.json";

/// The file of `table` in an export directory.
pub fn table_file(dir: &Path, table: Table) -> PathBuf {
    dir.join(format!("{}.jsonl", table.name()))
}

#[derive(Debug)]
pub struct JsonSink {
    dir: PathBuf,
    file: Option<BufWriter<File>>,
}

impl JsonSink {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned(), file: None }
    }
}

impl Sink for JsonSink {
    fn begin(&mut self, table: Table) -> anyhow::Result<()> {
        let path = table_file(&self.dir, table);
        let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        self.file = Some(BufWriter::new(file));
        Ok(())
    }

    fn row(&mut self, _table: Table, row: &Row) -> anyhow::Result<()> {
        let file = self.file.as_mut().context("no table started")?;
        serde_json::to_writer(&mut *file, row)?;
        file.write_all(b"\n")?;
        Ok(())
    }

    fn end(&mut self, _table: Table) -> anyhow::Result<()> {
        if let Some(file) = self.file.take() {
            file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, manifest: &Manifest) -> anyhow::Result<()> {
        write_manifest(&self.dir, manifest)
    }
}

pub fn write_manifest(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let path = dir.join(MANIFEST);
    let text = serde_json::to_string_pretty(manifest)? + "\n";
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}
