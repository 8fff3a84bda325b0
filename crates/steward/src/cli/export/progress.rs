//! Progress on a terminal: one bar per table with its row count, on stderr, and nothing at
//! all when stderr is not a terminal (scripts and logs get no control characters).

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use steward_store::Table;

#[derive(Debug)]
pub struct Bars {
    multi: Option<MultiProgress>,
}

impl Bars {
    pub fn new() -> Self {
        Self { multi: std::io::stderr().is_terminal().then(MultiProgress::new) }
    }

    /// A bar for `table`, expecting `rows` rows (hidden off a terminal).
    pub fn table(&self, table: Table, rows: u64) -> ProgressBar {
        let Some(multi) = &self.multi else { return ProgressBar::hidden() };
        let style = ProgressStyle::with_template("{prefix:>14} {bar:30} {pos}/{len} rows")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = multi.add(ProgressBar::new(rows).with_style(style));
        bar.set_prefix(table.name());
        bar
    }
}
