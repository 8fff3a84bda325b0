//! Chat threads: conversations with an agent. A thread keeps what people wrote, each message
//! with the run that answers it; the answer itself is that run's output, so it lives (and is
//! pruned) with the run. Messages follow the workspace's transcript retention.

use async_trait::async_trait;
use serde::Serialize;
use steward_engine::Timestamp;

use crate::Result;

/// A conversation with an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Thread {
    pub id: String,
    pub workspace: String,
    pub agent: String,
    /// The start of the first message, or what the person named it.
    pub title: String,
    pub created_at: Timestamp,
    /// When the last message came.
    pub updated_at: Timestamp,
}

/// A person's message in a thread, and the run that answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThreadMessage {
    pub thread_id: String,
    /// 1, 2, 3, … within the thread.
    pub seq: i64,
    pub content: String,
    pub run_id: String,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait ThreadStore: Send + Sync {
    async fn create_thread(
        &self,
        workspace: &str,
        agent: &str,
        title: &str,
        now: Timestamp,
    ) -> Result<Thread>;

    /// One thread; `NotFound` in other workspaces.
    async fn thread(&self, workspace: &str, id: &str) -> Result<Thread>;

    /// The workspace's threads (of one agent, if given), the most recently active first.
    async fn list_threads(&self, workspace: &str, agent: Option<&str>) -> Result<Vec<Thread>>;

    /// Deletes a thread and its messages (the runs stay, under run retention); false when it
    /// did not exist in the workspace.
    async fn delete_thread(&self, workspace: &str, id: &str) -> Result<bool>;

    /// Appends a message (the next `seq`) and moves the thread's `updated_at` to `now`.
    /// `NotFound` when the thread is not in the workspace.
    async fn add_message(
        &self,
        workspace: &str,
        thread_id: &str,
        content: &str,
        run_id: &str,
        now: Timestamp,
    ) -> Result<ThreadMessage>;

    /// A thread's messages in order; `NotFound` when the thread is not in the workspace.
    async fn thread_messages(&self, workspace: &str, thread_id: &str) -> Result<Vec<ThreadMessage>>;

    /// Deletes the workspace's messages created before `before`, and the threads left with
    /// none; returns how many messages went.
    async fn prune_transcripts(&self, workspace: &str, before: Timestamp) -> Result<u64>;
}
