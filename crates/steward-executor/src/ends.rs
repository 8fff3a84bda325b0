//! Telling waiters in this process that a run ended: a sync webhook waits for its run without
//! hearing every other run's progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use steward_engine::{RunStatus, StepError};
use tokio::sync::oneshot;

/// How a run ended, as its driver committed it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    pub status: RunStatus,
    pub output: Option<Value>,
    pub error: Option<StepError>,
}

type Waiters = HashMap<String, Vec<(u64, oneshot::Sender<RunEnd>)>>;

/// The waiters of each run.
#[derive(Debug, Default)]
pub(crate) struct Ends {
    waiters: Mutex<Waiters>,
    next: AtomicU64,
}

impl Ends {
    pub(crate) fn watch(self: &Arc<Self>, run_id: &str) -> EndWatch {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock().entry(run_id.to_owned()).or_default().push((id, tx));
        EndWatch { ends: self.clone(), run_id: run_id.to_owned(), id, rx: Some(rx) }
    }

    /// Tells every waiter of `run_id`.
    pub(crate) fn ended(&self, run_id: &str, end: &RunEnd) {
        let waiters = self.lock().remove(run_id).unwrap_or_default();
        for (_, tx) in waiters {
            let _ = tx.send(end.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A wait for one run's end; stops waiting when dropped.
#[derive(Debug)]
pub struct EndWatch {
    ends: Arc<Ends>,
    run_id: String,
    id: u64,
    rx: Option<oneshot::Receiver<RunEnd>>,
}

impl EndWatch {
    /// The run's end once a driver here commits it; pends for good after it was told once.
    pub async fn ended(&mut self) -> RunEnd {
        match &mut self.rx {
            Some(rx) => match rx.await {
                Ok(end) => {
                    self.rx = None;
                    end
                }
                Err(_) => {
                    self.rx = None;
                    std::future::pending().await
                }
            },
            None => std::future::pending().await,
        }
    }
}

impl Drop for EndWatch {
    fn drop(&mut self) {
        let mut waiters = self.ends.lock();
        if let Some(list) = waiters.get_mut(&self.run_id) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                waiters.remove(&self.run_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end() -> RunEnd {
        RunEnd { status: RunStatus::Succeeded, output: Some(Value::from(42)), error: None }
    }

    #[tokio::test]
    async fn every_waiter_of_a_run_hears_its_end_and_dropped_ones_leave_nothing() {
        let ends = Arc::new(Ends::default());
        let mut a = ends.watch("r1");
        let mut b = ends.watch("r1");
        let other = ends.watch("r2");
        let gone = ends.watch("r3");
        drop(gone);
        ends.ended("r1", &end());
        assert_eq!(a.ended().await, end());
        assert_eq!(b.ended().await, end());
        let told_twice = tokio::time::timeout(std::time::Duration::from_millis(20), a.ended()).await;
        assert!(told_twice.is_err(), "an end is told once");
        drop(other);
        assert!(ends.lock().is_empty(), "no waiter left behind");
    }
}
