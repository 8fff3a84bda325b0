//! Waking executors inside one process.
//!
//! A [`Notify`] stands for "work may have arrived". Waking both releases every executor
//! waiting right now and leaves one permit, so an executor that was between its last claim
//! and its next wait does not sleep through the news (it sees at most one spurious wakeup).

use std::time::Duration;

use tokio::sync::Notify;

pub(crate) fn wake(notify: &Notify) {
    notify.notify_waiters();
    notify.notify_one();
}

/// Returns on the next wakeup or after `timeout_ms`.
pub(crate) async fn wait(notify: &Notify, timeout_ms: u64) {
    // A timeout is a normal way for this to end.
    let _ = tokio::time::timeout(Duration::from_millis(timeout_ms), notify.notified()).await;
}
