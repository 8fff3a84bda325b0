//! Agent definitions (immutable versions, like flows) and the usage counters agents add to:
//! tokens, cost, model calls and tool calls per workspace, agent and day.

use async_trait::async_trait;
use serde::Serialize;
use steward_engine::Timestamp;

use crate::Result;

/// One stored version of an agent definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentVersion {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub version: i64,
    /// The definition as applied (YAML or JSON), instructions inlined.
    pub source: String,
    pub digest: String,
    pub created_at: Timestamp,
}

/// What a model call or a tool call adds to a workspace's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageDelta {
    pub workspace: String,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub agent: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micros: u64,
    pub model_calls: u64,
    pub tool_calls: u64,
}

/// Usage of one agent on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    pub day: String,
    pub agent: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micros: u64,
    pub model_calls: u64,
    pub tool_calls: u64,
}

#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Stores `source` as the agent's newest version, unless the newest has the same digest
    /// (then that one is returned). The flag says whether a version was made. Saving a
    /// deleted agent's name clears its deletion.
    async fn save_agent(
        &self,
        workspace: &str,
        name: &str,
        source: &str,
        digest: &str,
        now: Timestamp,
    ) -> Result<(AgentVersion, bool)>;

    /// The newest version of an agent; `None` when it is deleted.
    async fn agent(&self, workspace: &str, name: &str) -> Result<Option<AgentVersion>>;

    /// One version by id, a deleted agent's too (running steps keep their version);
    /// `NotFound` in other workspaces.
    async fn agent_version(&self, workspace: &str, id: &str) -> Result<AgentVersion>;

    /// The newest version of each agent that is not deleted, by name.
    async fn list_agents(&self, workspace: &str) -> Result<Vec<AgentVersion>>;

    /// Soft-deletes an agent: it is hidden until restored (or saved again), and purged with its
    /// chat threads [`crate::PURGE_AFTER_DAYS`] days later. False when there was no agent of
    /// that name, or it was already deleted.
    async fn delete_agent(&self, workspace: &str, name: &str, now: Timestamp) -> Result<bool>;

    /// Brings a deleted agent back; false when there is no deleted agent of that name.
    async fn restore_agent(&self, workspace: &str, name: &str, now: Timestamp) -> Result<bool>;

    /// Adds to the day's counters of the workspace and agent.
    async fn add_usage(&self, delta: &UsageDelta) -> Result<()>;

    /// Counters of the workspace for days `from..=to` (`YYYY-MM-DD`), by day and agent.
    async fn usage(&self, workspace: &str, from: &str, to: &str) -> Result<Vec<UsageRow>>;
}
