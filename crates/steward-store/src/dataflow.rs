//! Data-flow receipts: which outside processors received data from runs, built from the
//! journal's `data_sent` events (host, connections, bytes, categories of data; never values).
//!
//! A run's receipt lists its transfers and sums them per processor; a workspace's record of
//! processing sums every run's transfers over a period. Both follow run metadata retention,
//! since they are read from the journal.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::Serialize;
use steward_engine::{Entry, Event, Timestamp};

use crate::Result;

/// A `data_sent` event of some run of a workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct SentRecord {
    pub run_id: String,
    pub flow_name: String,
    pub entry: Entry,
}

#[async_trait]
pub trait DataFlowStore: Send + Sync {
    /// The workspace's `data_sent` events from `from` (inclusive) to `to` (exclusive), oldest
    /// first.
    async fn data_sent(&self, workspace: &str, from: Timestamp, to: Timestamp) -> Result<Vec<SentRecord>>;
}

/// One transfer: a request (or redirect hop) that left for a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub step: String,
    pub host: String,
    pub connections: Vec<String>,
    pub bytes: u64,
    pub categories: Vec<String>,
    pub at: i64,
}

/// What one processor (a host) received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Processor {
    pub host: String,
    pub connections: BTreeSet<String>,
    pub categories: BTreeSet<String>,
    /// Steps (in a run's receipt) or flows (in a record of processing) that sent to it.
    pub senders: BTreeSet<String>,
    pub requests: u64,
    pub bytes: u64,
    /// Runs that sent to it (in a record of processing).
    pub runs: u64,
    pub first_at: i64,
    pub last_at: i64,
}

impl Processor {
    fn add(&mut self, t: &Transfer, sender: &str) {
        if self.requests == 0 {
            self.first_at = t.at;
        }
        self.connections.extend(t.connections.iter().cloned());
        self.categories.extend(t.categories.iter().cloned());
        self.senders.insert(sender.to_owned());
        self.requests += 1;
        self.bytes += t.bytes;
        self.first_at = self.first_at.min(t.at);
        self.last_at = self.last_at.max(t.at);
    }
}

/// A run's data-flow receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReceipt {
    pub run_id: String,
    pub processors: Vec<Processor>,
    pub transfers: Vec<Transfer>,
}

impl RunReceipt {
    /// The receipt of a run from its journal.
    pub fn from_journal(run_id: &str, journal: &[Entry]) -> RunReceipt {
        let transfers: Vec<Transfer> = journal.iter().filter_map(transfer).collect();
        let mut by_host: BTreeMap<String, Processor> = BTreeMap::new();
        for t in &transfers {
            let p = by_host
                .entry(t.host.clone())
                .or_insert_with(|| Processor { host: t.host.clone(), ..Processor::default() });
            p.add(t, &t.step);
            p.runs = 1;
        }
        RunReceipt { run_id: run_id.to_owned(), processors: by_host.into_values().collect(), transfers }
    }
}

/// A workspace's record of processing over a period: every processor that received data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessingRecord {
    pub from: i64,
    pub to: i64,
    pub processors: Vec<Processor>,
}

impl ProcessingRecord {
    pub fn from_records(from: Timestamp, to: Timestamp, records: &[SentRecord]) -> ProcessingRecord {
        let mut by_host: BTreeMap<String, (Processor, BTreeSet<&str>)> = BTreeMap::new();
        for r in records {
            let Some(t) = transfer(&r.entry) else { continue };
            let (p, runs) = by_host.entry(t.host.clone()).or_insert_with(|| {
                (Processor { host: t.host.clone(), ..Processor::default() }, BTreeSet::new())
            });
            p.add(&t, &r.flow_name);
            runs.insert(&r.run_id);
            p.runs = runs.len() as u64;
        }
        ProcessingRecord {
            from: from.0,
            to: to.0,
            processors: by_host.into_values().map(|(p, _)| p).collect(),
        }
    }
}

fn transfer(e: &Entry) -> Option<Transfer> {
    let Event::DataSent { key, host, connections, bytes, categories } = &e.event else { return None };
    Some(Transfer {
        step: key.clone(),
        host: host.clone(),
        connections: connections.clone(),
        bytes: *bytes,
        categories: categories.clone(),
        at: e.at.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(seq: u64, at: i64, key: &str, host: &str, bytes: u64, conn: &[&str]) -> Entry {
        Entry {
            seq,
            at: Timestamp(at),
            event: Event::DataSent {
                key: key.into(),
                host: host.into(),
                connections: conn.iter().map(|c| (*c).to_owned()).collect(),
                bytes,
                categories: vec!["inputs".into()],
            },
        }
    }

    #[test]
    fn a_receipt_sums_transfers_per_host() {
        let journal = vec![
            sent(1, 10, "a", "api.example.com", 100, &["gh"]),
            Entry { seq: 2, at: Timestamp(11), event: Event::StepSkipped { key: "b".into() } },
            sent(3, 20, "c", "api.example.com", 50, &[]),
            sent(4, 30, "c", "other.test", 7, &[]),
        ];
        let r = RunReceipt::from_journal("r1", &journal);
        assert_eq!(r.transfers.len(), 3);
        let api = &r.processors[0];
        assert_eq!(
            (api.host.as_str(), api.requests, api.bytes, api.first_at, api.last_at),
            ("api.example.com", 2, 150, 10, 20)
        );
        assert_eq!(api.senders.iter().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(api.connections.iter().collect::<Vec<_>>(), ["gh"]);
        assert_eq!(r.processors[1].bytes, 7);
    }

    #[test]
    fn a_record_of_processing_counts_runs_and_flows_per_host() {
        let rec = |run: &str, flow: &str, e: Entry| SentRecord {
            run_id: run.into(),
            flow_name: flow.into(),
            entry: e,
        };
        let records = vec![
            rec("r1", "sync", sent(1, 10, "a", "h.test", 1, &[])),
            rec("r1", "sync", sent(2, 11, "a", "h.test", 2, &[])),
            rec("r2", "other", sent(1, 12, "x", "h.test", 3, &[])),
        ];
        let p = ProcessingRecord::from_records(Timestamp(0), Timestamp(100), &records);
        assert_eq!(p.processors.len(), 1);
        let h = &p.processors[0];
        assert_eq!((h.requests, h.bytes, h.runs), (3, 6, 2));
        assert_eq!(h.senders.iter().collect::<Vec<_>>(), ["other", "sync"]);
    }
}
