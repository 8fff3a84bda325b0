//! The CSV format: `<table>.csv` with a header row of column names, quoted as RFC 4180 says
//! (fields with commas, quotes or line breaks in double quotes, quotes doubled, CRLF between
//! records). `null` is an empty field, as is the empty string; JSON columns hold JSON text.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use steward_store::{Row, Table};

use super::{Manifest, Sink, plain};

#[derive(Debug)]
pub struct CsvSink {
    dir: PathBuf,
    writer: Option<csv::Writer<File>>,
}

impl CsvSink {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned(), writer: None }
    }
}

impl Sink for CsvSink {
    fn begin(&mut self, table: Table) -> anyhow::Result<()> {
        let path = self.dir.join(format!("{}.csv", table.name()));
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_path(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        writer.write_record(table.columns().iter().map(|c| c.name))?;
        self.writer = Some(writer);
        Ok(())
    }

    fn row(&mut self, table: Table, row: &Row) -> anyhow::Result<()> {
        let writer = self.writer.as_mut().context("no table started")?;
        let fields = table.columns().iter().map(|c| row.get(c.name).and_then(plain).unwrap_or_default());
        writer.write_record(fields)?;
        Ok(())
    }

    fn end(&mut self, _table: Table) -> anyhow::Result<()> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush()?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, manifest: &Manifest) -> anyhow::Result<()> {
        super::json::write_manifest(&self.dir, manifest)
    }
}
