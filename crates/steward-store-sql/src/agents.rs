//! SQL and row mapping for agents and their usage, shared by both backends (the trait
//! implementation is in [`crate::shared`]).

use steward_engine::Timestamp;
use steward_store::{AgentVersion, Result, UsageRow};

use crate::rows::RowExt;

macro_rules! agent_cols {
    () => {
        "id, workspace_id, name, version, source, digest, created_at"
    };
}

/// The newest version, deleted or not (saving numbers after it).
pub(crate) const NEWEST: &str = concat!(
    "SELECT ",
    agent_cols!(),
    " FROM agent_versions WHERE workspace_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1"
);
/// The newest version of an agent that is not deleted.
pub(crate) const LATEST: &str = concat!(
    "SELECT ",
    agent_cols!(),
    " FROM agent_versions WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL \
     ORDER BY version DESC LIMIT 1"
);
pub(crate) const BY_ID: &str =
    concat!("SELECT ", agent_cols!(), " FROM agent_versions WHERE workspace_id = $1 AND id = $2");
pub(crate) const LIST: &str = concat!(
    "SELECT ",
    agent_cols!(),
    " FROM agent_versions a WHERE workspace_id = $1 AND deleted_at IS NULL AND version = \
     (SELECT MAX(version) FROM agent_versions b WHERE b.workspace_id = a.workspace_id AND b.name = a.name) \
     ORDER BY name"
);
pub(crate) const INSERT: &str =
    concat!("INSERT INTO agent_versions (", agent_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7)");

/// Soft-deletes every version of an agent (`$3` the time); all versions share the time.
pub(crate) const DELETE: &str = "UPDATE agent_versions SET deleted_at = $3 \
     WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL";
/// Clears an agent's deletion.
pub(crate) const RESTORE: &str = "UPDATE agent_versions SET deleted_at = NULL \
     WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NOT NULL";

pub(crate) const ADD_USAGE: &str = "INSERT INTO agent_usage \
     (workspace_id, day, agent, input_tokens, output_tokens, cost_micros, model_calls, tool_calls) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (workspace_id, day, agent) DO UPDATE SET \
     input_tokens = agent_usage.input_tokens + excluded.input_tokens, \
     output_tokens = agent_usage.output_tokens + excluded.output_tokens, \
     cost_micros = agent_usage.cost_micros + excluded.cost_micros, \
     model_calls = agent_usage.model_calls + excluded.model_calls, \
     tool_calls = agent_usage.tool_calls + excluded.tool_calls";

pub(crate) const USAGE: &str = "SELECT day, agent, input_tokens, output_tokens, cost_micros, model_calls, \
     tool_calls FROM agent_usage WHERE workspace_id = $1 AND day >= $2 AND day <= $3 ORDER BY day, agent";

pub(crate) fn agent_version(row: &impl RowExt) -> Result<AgentVersion> {
    Ok(AgentVersion {
        id: row.text("id")?,
        workspace: row.text("workspace_id")?,
        name: row.text("name")?,
        version: row.int("version")?,
        source: row.text("source")?,
        digest: row.text("digest")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

pub(crate) fn usage_row(row: &impl RowExt) -> Result<UsageRow> {
    let n = |c: &str| row.int(c).map(|v| v.max(0) as u64);
    Ok(UsageRow {
        day: row.text("day")?,
        agent: row.text("agent")?,
        input_tokens: n("input_tokens")?,
        output_tokens: n("output_tokens")?,
        cost_micros: n("cost_micros")?,
        model_calls: n("model_calls")?,
        tool_calls: n("tool_calls")?,
    })
}
