//! The SQL format: one `workspace.sql` with a `CREATE TABLE` and `INSERT` statements per
//! table, in one transaction, in SQL that both `sqlite3` and `psql` load into an empty
//! database: TEXT and BIGINT columns, quoted identifiers, string literals with quotes
//! doubled (and nothing else escaped, which both read the same way).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use steward_store::{ColumnType, Row, Table};

use super::{Manifest, Sink, plain};

pub const FILE: &str = "workspace.sql";

#[derive(Debug)]
pub struct SqlSink {
    out: BufWriter<File>,
}

impl SqlSink {
    /// Creates `workspace.sql` in `dir` and writes its header.
    pub fn create(dir: &Path, manifest: &Manifest) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::new(file);
        writeln!(out, "-- Steward workspace export ({}).", manifest.format)?;
        writeln!(out, "-- Workspace: {}; exported at {} ms.", manifest.workspace.id, manifest.exported_at)?;
        writeln!(out, "-- Load into an empty database: sqlite3 db < {FILE}, or psql -f {FILE}.")?;
        writeln!(out, "BEGIN;")?;
        Ok(Self { out })
    }
}

/// `"name"`: quoted, so no column name is taken for a keyword.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A value as a SQL literal.
fn literal(value: Option<&serde_json::Value>, kind: ColumnType) -> String {
    match (value.and_then(plain), kind) {
        (None, _) => "NULL".to_owned(),
        (Some(number), ColumnType::Integer) => number,
        (Some(text), ColumnType::Text) => format!("'{}'", text.replace('\'', "''")),
    }
}

impl Sink for SqlSink {
    fn begin(&mut self, table: Table) -> anyhow::Result<()> {
        let columns: Vec<String> = table
            .columns()
            .iter()
            .map(|c| {
                let kind = match c.kind {
                    ColumnType::Text => "TEXT",
                    ColumnType::Integer => "BIGINT",
                };
                format!("    {} {kind}", ident(c.name))
            })
            .collect();
        writeln!(self.out, "\nCREATE TABLE {} (\n{}\n);", ident(table.name()), columns.join(",\n"))?;
        Ok(())
    }

    fn row(&mut self, table: Table, row: &Row) -> anyhow::Result<()> {
        let names: Vec<String> = table.columns().iter().map(|c| ident(c.name)).collect();
        let values: Vec<String> = table.columns().iter().map(|c| literal(row.get(c.name), c.kind)).collect();
        writeln!(
            self.out,
            "INSERT INTO {} ({}) VALUES ({});",
            ident(table.name()),
            names.join(", "),
            values.join(", ")
        )?;
        Ok(())
    }

    fn end(&mut self, _table: Table) -> anyhow::Result<()> {
        Ok(())
    }

    fn finish(mut self: Box<Self>, _manifest: &Manifest) -> anyhow::Result<()> {
        writeln!(self.out, "\nCOMMIT;")?;
        self.out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn literals_double_quotes_and_keep_everything_else() {
        assert_eq!(literal(Some(&json!("it's\n\\ok")), ColumnType::Text), "'it''s\n\\ok'");
        assert_eq!(literal(Some(&json!(42)), ColumnType::Integer), "42");
        assert_eq!(literal(Some(&json!(null)), ColumnType::Text), "NULL");
        assert_eq!(literal(None, ColumnType::Integer), "NULL");
        assert_eq!(ident("at"), "\"at\"");
    }
}
