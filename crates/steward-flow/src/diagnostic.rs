//! Validation errors that name the file, line and column, and say what to do.

use std::fmt;

use crate::path::Path;
use crate::source::{Locations, Position};

/// One problem in a flow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub position: Position,
    /// The path of the offending node (`steps[1].http.url`).
    pub path: Path,
    pub message: String,
}

/// Every problem found in a flow file, in source order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, d.position.line, d.position.column, d.message)?;
            if !d.path.segments().is_empty() {
                write!(f, " (at {})", d.path)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Collects diagnostics while a file is read.
#[derive(Debug)]
pub(crate) struct Sink<'a> {
    pub(crate) locations: &'a Locations,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(locations: &'a Locations) -> Self {
        Self { locations, diagnostics: Vec::new() }
    }

    /// A problem with the value at `path`.
    pub(crate) fn at_value(&mut self, path: &Path, message: impl Into<String>) {
        let position = self.locations.value(path);
        self.push(position, path, message.into());
    }

    /// A problem with the key whose value is at `path` (unknown or misplaced keys).
    pub(crate) fn at_key(&mut self, path: &Path, message: impl Into<String>) {
        let position = self.locations.key(path);
        self.push(position, path, message.into());
    }

    fn push(&mut self, position: Position, path: &Path, message: String) {
        self.diagnostics.push(Diagnostic { position, path: path.clone(), message });
    }

    pub(crate) fn into_error(mut self, file: &str) -> LoadError {
        self.diagnostics.sort_by_key(|d| (d.position.line, d.position.column));
        self.diagnostics.dedup();
        LoadError { file: file.to_owned(), diagnostics: self.diagnostics }
    }
}

/// The closest candidate to a misspelt word, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d < c.len() && *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(suggest("htp", &["http", "code"]), Some("http"));
        assert_eq!(suggest("trasnform", &["transform", "wait"]), Some("transform"));
        assert_eq!(suggest("banana", &["http", "code"]), None);
    }
}
