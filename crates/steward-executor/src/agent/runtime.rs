//! What agent steps share: the store's agent versions (parsed once per version), the price
//! table, the workspace budget and the usage counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use steward_agent::definition::AgentDef;
use steward_agent::pricing::PriceTable;
use steward_agent::turns::Record;
use steward_engine::{ErrorKind, StepError, Timestamp};
use steward_store::{Store, UsageDelta};

use super::budget::WorkspaceBudget;

pub(crate) struct AgentRuntime {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) prices: PriceTable,
    pub(crate) budget: WorkspaceBudget,
    /// Listeners to answers as they are written.
    pub(crate) taps: Arc<super::taps::Taps>,
    defs: Mutex<HashMap<String, Arc<AgentDef>>>,
}

impl std::fmt::Debug for AgentRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRuntime").field("prices", &self.prices.len()).finish_non_exhaustive()
    }
}

impl AgentRuntime {
    pub(crate) fn new(store: Arc<dyn Store>, prices: PriceTable, budget: WorkspaceBudget) -> Self {
        Self { store, prices, budget, taps: Arc::default(), defs: Mutex::new(HashMap::new()) }
    }

    /// The newest version of an agent: its id and definition.
    pub(crate) async fn latest(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<(String, Arc<AgentDef>), StepError> {
        let version = self.store.agent(workspace, name).await.map_err(internal)?.ok_or_else(|| {
            StepError::new(
                ErrorKind::Input,
                format!("there is no agent named `{name}`; apply it with `steward agents apply`"),
            )
        })?;
        let def = self.parse(&version.id, &version.name, &version.source)?;
        Ok((version.id, def))
    }

    /// The version a step began with (a step keeps its version to the end).
    pub(crate) async fn version(&self, workspace: &str, id: &str) -> Result<Arc<AgentDef>, StepError> {
        if let Some(def) = self.cached(id) {
            return Ok(def);
        }
        let version = self.store.agent_version(workspace, id).await.map_err(internal)?;
        self.parse(&version.id, &version.name, &version.source)
    }

    fn cached(&self, id: &str) -> Option<Arc<AgentDef>> {
        self.defs.lock().ok()?.get(id).cloned()
    }

    fn parse(&self, id: &str, name: &str, source: &str) -> Result<Arc<AgentDef>, StepError> {
        if let Some(def) = self.cached(id) {
            return Ok(def);
        }
        let def = steward_agent::definition::load(&format!("{name}.yaml"), source).map_err(|e| {
            StepError::new(ErrorKind::Internal, format!("the stored agent does not load: {e}"))
        })?;
        let def = Arc::new(def);
        if let Ok(mut defs) = self.defs.lock() {
            defs.insert(id.to_owned(), def.clone());
        }
        Ok(def)
    }

    /// Adds a model turn to the day's usage. A failure to count is logged, not fatal: the
    /// turn happened and its record is what budgets per run read.
    pub(crate) async fn count_turn(&self, workspace: &str, agent: &str, turn: &Record, now: Timestamp) {
        let Record::Turn { usage, cost_micros, .. } = turn else { return };
        let delta = UsageDelta {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_micros: cost_micros.unwrap_or(0),
            model_calls: 1,
            ..self.delta(workspace, agent, now)
        };
        self.add(&delta).await;
    }

    pub(crate) async fn count_tool(&self, workspace: &str, agent: &str, now: Timestamp) {
        let delta = UsageDelta { tool_calls: 1, ..self.delta(workspace, agent, now) };
        self.add(&delta).await;
    }

    fn delta(&self, workspace: &str, agent: &str, now: Timestamp) -> UsageDelta {
        UsageDelta {
            workspace: workspace.to_owned(),
            day: day_of(now),
            agent: agent.to_owned(),
            ..UsageDelta::default()
        }
    }

    async fn add(&self, delta: &UsageDelta) {
        if let Err(e) = self.store.add_usage(delta).await {
            tracing::warn!(workspace = %delta.workspace, agent = %delta.agent, error = %e, "could not count agent usage");
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a time.
pub(crate) use steward_store::day_of;

fn internal(e: steward_store::Error) -> StepError {
    StepError::new(ErrorKind::Internal, e.to_string())
}
