//! The audit log: an append-only, hash-chained record of who did what, to which object, when
//! and from where.
//!
//! Entry `n` stores `hash(n) = SHA-256(hash(n-1) ‖ fields of n)`, with the fields written in a
//! fixed order and the details exactly as stored. [`Verifier`] walks the chain in `seq` order
//! and names the first entry that was edited, inserted or removed (a gap in `seq` or a
//! `prev_hash` that does not match). Removing entries from the end of the log cannot be seen
//! from the log alone.
//!
//! Retention removes old entries, but only with a record of each removed stretch
//! ([`PrunedRange`]: the hash before it and its last hash). The verifier steps over a gap
//! only where such a record links the entries on both sides, and reports it; any other gap,
//! and any edit of a kept entry, still breaks the chain.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use steward_engine::Timestamp;

use crate::{PrunedRange, Result, RetentionStore};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An action to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    /// `None` for actions outside any workspace (logins, account changes).
    pub workspace: Option<String>,
    /// `user:<id>`, `token:<id>`, `webhook:<id>`, `system`, or `anonymous`.
    pub actor: String,
    /// `login.failed`, `flow.applied`, `run.cancelled`, ...
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    /// The client address the request came from.
    pub source: Option<String>,
    /// More facts about the action; never secrets or payloads.
    pub details: Value,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: Timestamp,
    pub workspace: Option<String>,
    pub actor: String,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub source: Option<String>,
    pub details: Value,
    /// The details as stored, which the hash covers.
    #[serde(skip)]
    pub details_text: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub action: Option<String>,
    /// Entries before this `seq` (cursor pagination, newest first).
    pub before: Option<i64>,
    pub limit: usize,
}

/// The hash of an entry with these fields, chained to `prev_hash`.
#[expect(clippy::too_many_arguments, reason = "each argument is one hashed field")]
pub fn chain_hash(
    prev_hash: &str,
    seq: i64,
    at: Timestamp,
    workspace: Option<&str>,
    actor: &str,
    action: &str,
    object_type: &str,
    object_id: Option<&str>,
    source: Option<&str>,
    details_text: &str,
) -> String {
    let fields = serde_json::json!([seq, at.0, workspace, actor, action, object_type, object_id, source]);
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(fields.to_string().as_bytes());
    h.update(b"\n");
    h.update(details_text.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl AuditEvent {
    /// The hash this entry's fields should have after `prev_hash`.
    pub fn expected_hash(&self, prev_hash: &str) -> String {
        chain_hash(
            prev_hash,
            self.seq,
            self.at,
            self.workspace.as_deref(),
            &self.actor,
            &self.action,
            &self.object_type,
            self.object_id.as_deref(),
            self.source.as_deref(),
            &self.details_text,
        )
    }
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub problem: String,
}

/// Checks entries in `seq` order, page by page.
#[derive(Debug, Clone)]
pub struct Verifier {
    prev_seq: i64,
    prev_hash: String,
    pub checked: u64,
    /// Stretches removed by retention, by first `seq`, not yet stepped over.
    pruned: std::collections::BTreeMap<i64, PrunedRange>,
    /// Stretches stepped over, in order.
    pub skipped: Vec<PrunedRange>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::with_pruned(Vec::new())
    }
}

impl Verifier {
    /// A verifier that accepts the gaps these removed stretches explain.
    pub fn with_pruned(ranges: Vec<PrunedRange>) -> Self {
        Self {
            prev_seq: 0,
            prev_hash: GENESIS.to_owned(),
            checked: 0,
            pruned: ranges.into_iter().map(|r| (r.first_seq, r)).collect(),
            skipped: Vec::new(),
        }
    }

    /// Steps over the removed stretches that start right after the last entry checked and
    /// link to it, up to (not including) `next_seq`.
    fn skip_pruned(&mut self, next_seq: i64) {
        while self.prev_seq + 1 < next_seq {
            let Some(range) = self.pruned.get(&(self.prev_seq + 1)) else { return };
            if range.prev_hash != self.prev_hash || range.last_seq >= next_seq {
                return;
            }
            let range = range.clone();
            self.pruned.remove(&range.first_seq);
            self.prev_seq = range.last_seq;
            self.prev_hash = range.last_hash.clone();
            self.skipped.push(range);
        }
    }

    /// Checks the next entry; the first error names the first broken link.
    pub fn check(&mut self, e: &AuditEvent) -> Result<(), BrokenLink> {
        let broken = |problem: String| Err(BrokenLink { seq: e.seq, problem });
        self.skip_pruned(e.seq);
        if e.seq != self.prev_seq + 1 {
            return broken(format!(
                "expected entry {} next, found {} (entries were removed or inserted)",
                self.prev_seq + 1,
                e.seq
            ));
        }
        if e.prev_hash != self.prev_hash {
            return broken("its link to the previous entry does not match (an entry was replaced)".into());
        }
        if e.hash != e.expected_hash(&self.prev_hash) {
            return broken("its content does not match its hash (the entry was edited)".into());
        }
        self.prev_seq = e.seq;
        self.prev_hash = e.hash.clone();
        self.checked += 1;
        Ok(())
    }

    /// The `seq` after which the next page starts.
    pub fn last_seq(&self) -> i64 {
        self.prev_seq
    }
}

/// What a verification of an intact chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Entries checked.
    pub checked: u64,
    /// Stretches removed by retention, stepped over.
    pub pruned: Vec<PrunedRange>,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry at the end of the chain.
    async fn append_audit(&self, event: NewAuditEvent) -> Result<AuditEvent>;

    /// A workspace's entries, newest first.
    async fn audit(&self, workspace: &str, filter: &AuditFilter) -> Result<Vec<AuditEvent>>;

    /// Entries of every workspace after `after_seq`, oldest first, for verifying the chain.
    async fn audit_chain(&self, after_seq: i64, limit: usize) -> Result<Vec<AuditEvent>>;
}

/// Verifies the whole chain, oldest entry first, a page at a time: `Ok(Ok(report))` when
/// every entry checks out (and every gap is a stretch removed by retention), `Ok(Err(link))`
/// naming the first broken link.
pub async fn verify_chain(store: &dyn RetentionStore) -> Result<Result<ChainReport, BrokenLink>> {
    const PAGE: usize = 1000;
    let mut v = Verifier::with_pruned(store.audit_pruned().await?);
    loop {
        let page = store.audit_chain(v.last_seq(), PAGE).await?;
        if page.is_empty() {
            v.skip_pruned(i64::MAX);
            return Ok(Ok(ChainReport { checked: v.checked, pruned: v.skipped }));
        }
        if let Err(broken) = page.iter().try_for_each(|e| v.check(e)) {
            return Ok(Err(broken));
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str) -> AuditEvent {
        let mut e = AuditEvent {
            seq,
            at: Timestamp(1000 + seq),
            workspace: Some("acme".into()),
            actor: "user:1".into(),
            action: "flow.applied".into(),
            object_type: "flow".into(),
            object_id: Some("hello".into()),
            source: Some("127.0.0.1".into()),
            details: Value::Null,
            details_text: "{\"version\":1}".into(),
            prev_hash: prev.to_owned(),
            hash: String::new(),
        };
        e.hash = e.expected_hash(prev);
        e
    }

    fn chain(n: i64) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
            out.push(entry(seq, &prev));
        }
        out
    }

    fn verify(entries: &[AuditEvent]) -> Result<u64, BrokenLink> {
        let mut v = Verifier::default();
        entries.iter().try_for_each(|e| v.check(e))?;
        Ok(v.checked)
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn edits_removals_and_insertions_name_the_first_broken_link() {
        let mut edited = chain(5);
        edited[2].actor = "user:2".into();
        assert_eq!(verify(&edited).map_err(|b| b.seq), Err(3));

        let mut removed = chain(5);
        removed.remove(1);
        let err = verify(&removed).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(err.problem.contains("expected entry 2"), "{}", err.problem);

        // A forged entry with a correct hash of its own still breaks the next link.
        let mut replaced = chain(5);
        replaced[1] = entry(2, GENESIS);
        assert_eq!(verify(&replaced).map_err(|b| b.seq), Err(2));
    }
}
