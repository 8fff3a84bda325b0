//! Waiting for runs to finish by listening to the executor's progress stream (the journal
//! entries each commit carries) instead of polling the store. It also counts commits and
//! events, which is what a durable step costs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use steward_engine::{Event, RunStatus};
use steward_executor::{Executor, Progress};
use steward_store::{DEFAULT_WORKSPACE, RunFilter, Store};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

/// Finished runs and the commits seen so far.
#[derive(Debug)]
pub struct Finishes {
    rx: broadcast::Receiver<Progress>,
    pub finished: HashSet<String>,
    pub failed: Vec<(String, RunStatus)>,
    /// Commits (`append` calls) announced on the stream.
    pub commits: u64,
    /// Journal entries those commits carried.
    pub events: u64,
    /// The stream dropped messages, so `commits` and `events` are too low; the finished runs
    /// were read back from the store.
    pub lagged: bool,
}

impl Finishes {
    /// Subscribes before anything to watch is started.
    pub fn subscribe(executor: &Executor) -> Self {
        Self {
            rx: executor.subscribe(),
            finished: HashSet::new(),
            failed: Vec::new(),
            commits: 0,
            events: 0,
            lagged: false,
        }
    }

    /// Waits until `want` runs have finished; fails after `timeout` or when a run did not
    /// succeed.
    pub async fn until(
        &mut self,
        store: &Arc<dyn Store>,
        want: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.finished.len() < want {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => anyhow::bail!(
                    "timed out after {timeout:?}: {} of {want} runs finished",
                    self.finished.len()
                ),
                Ok(Ok(p)) => self.note(&p),
                Ok(Err(RecvError::Lagged(_))) => {
                    self.lagged = true;
                    self.read_back(store, want).await?;
                }
                Ok(Err(RecvError::Closed)) => anyhow::bail!("the executor's progress stream closed"),
            }
        }
        if let Some((id, status)) = self.failed.first() {
            anyhow::bail!("{} runs did not succeed; run {id} is {}", self.failed.len(), status.as_str());
        }
        Ok(())
    }

    fn note(&mut self, p: &Progress) {
        self.commits += 1;
        self.events += p.entries.len() as u64;
        for e in p.entries.iter() {
            if let Event::RunFinished { status, .. } = &e.event
                && self.finished.insert(p.run_id.clone())
                && *status != RunStatus::Succeeded
            {
                self.failed.push((p.run_id.clone(), *status));
            }
        }
    }

    /// After the stream dropped messages: the finished runs, from the store.
    async fn read_back(&mut self, store: &Arc<dyn Store>, want: usize) -> anyhow::Result<()> {
        for status in [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Cancelled] {
            let filter = RunFilter { status: Some(status), limit: want + 1, ..RunFilter::default() };
            for run in store.list_runs(DEFAULT_WORKSPACE, &filter).await? {
                if self.finished.insert(run.id.clone()) && status != RunStatus::Succeeded {
                    self.failed.push((run.id, status));
                }
            }
        }
        Ok(())
    }
}
