//! Listening to an agent's answer as the model writes it. A listener (a chat client waiting
//! for a reply) opens a tap on a run; while one is open, model calls of that run in this
//! process stream, and each piece of text goes to the tap. Nothing is kept: what is missed is
//! in the run's journal once the turn is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

/// Pieces of text a slow listener may fall behind by before it misses some.
const BACKLOG: usize = 1024;

/// The open taps, by run.
#[derive(Debug, Default)]
pub(crate) struct Taps {
    open: Mutex<HashMap<String, broadcast::Sender<String>>>,
}

impl Taps {
    /// Where a model call of `run_id` sends its text, when someone listens.
    pub(crate) fn sender(&self, run_id: &str) -> Option<broadcast::Sender<String>> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(run_id).filter(|tx| tx.receiver_count() > 0).cloned()
    }

    fn close(&self, run_id: &str) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.get(run_id).is_some_and(|tx| tx.receiver_count() == 0) {
            open.remove(run_id);
        }
    }
}

/// An open tap; closing it (dropping) stops the streaming once no one else listens.
#[derive(Debug)]
pub struct Tap {
    rx: Option<broadcast::Receiver<String>>,
    taps: Arc<Taps>,
    run_id: String,
}

impl Tap {
    pub(crate) fn open(taps: &Arc<Taps>, run_id: &str) -> Self {
        let mut open = taps.open.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = open.entry(run_id.to_owned()).or_insert_with(|| broadcast::channel(BACKLOG).0).subscribe();
        Self { rx: Some(rx), taps: taps.clone(), run_id: run_id.to_owned() }
    }

    /// The next piece of text; `None` if the listener fell behind and pieces were dropped.
    pub async fn recv(&mut self) -> Option<String> {
        let rx = self.rx.as_mut()?;
        loop {
            match rx.recv().await {
                Ok(text) => return Some(text),
                Err(broadcast::error::RecvError::Lagged(_)) => return None,
                // Never: the map holds a sender while this tap is open.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

impl Tap {
    /// A piece of text already sent, if there is one.
    pub fn try_recv(&mut self) -> Option<String> {
        loop {
            match self.rx.as_mut()?.try_recv() {
                Ok(text) => return Some(text),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        drop(self.rx.take());
        self.taps.close(&self.run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn text_reaches_open_taps_and_closed_taps_are_forgotten() {
        let taps = Arc::new(Taps::default());
        assert!(taps.sender("r1").is_none(), "no one listens");
        let mut tap = Tap::open(&taps, "r1");
        let tx = taps.sender("r1").expect("a listener");
        tx.send("Hel".into()).expect("sent");
        tx.send("lo".into()).expect("sent");
        assert_eq!(tap.recv().await.as_deref(), Some("Hel"));
        assert_eq!(tap.recv().await.as_deref(), Some("lo"));
        assert!(taps.sender("r2").is_none(), "taps are per run");
        let second = Tap::open(&taps, "r1");
        drop(tap);
        assert!(taps.sender("r1").is_some(), "another listener still listens");
        drop(second);
        assert!(taps.sender("r1").is_none());
        assert!(taps.open.lock().expect("lock").is_empty(), "nothing is left behind");
    }
}
