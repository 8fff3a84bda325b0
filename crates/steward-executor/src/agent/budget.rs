//! Workspace budgets for agents: tokens and cost per day and per month (UTC), read from the
//! usage counters before every model call. Nothing is sent once a budget is used up.

use serde::Deserialize;
use steward_engine::{ErrorKind, StepError, Timestamp};

use super::runtime::day_of;
use crate::step::Services;

/// Limits every workspace's agents share; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceBudget {
    pub daily_tokens: Option<u64>,
    pub monthly_tokens: Option<u64>,
    /// US dollars.
    pub daily_cost: Option<f64>,
    pub monthly_cost: Option<f64>,
}

impl WorkspaceBudget {
    fn is_unlimited(&self) -> bool {
        *self == WorkspaceBudget::default()
    }

    /// Refuses a model call when the workspace has used up a budget.
    pub(crate) async fn check(
        &self,
        sv: &Services,
        workspace: &str,
        now: Timestamp,
    ) -> Result<(), StepError> {
        if self.is_unlimited() {
            return Ok(());
        }
        let today = day_of(now);
        let month_start = format!("{}-01", &today[..7]);
        let rows = sv
            .agents
            .store
            .usage(workspace, &month_start, &today)
            .await
            .map_err(|e| StepError::new(ErrorKind::Internal, e.to_string()))?;
        let (mut day_tokens, mut day_cost, mut month_tokens, mut month_cost) = (0u64, 0u64, 0u64, 0u64);
        for r in &rows {
            let tokens = r.input_tokens + r.output_tokens;
            month_tokens += tokens;
            month_cost += r.cost_micros;
            if r.day == today {
                day_tokens += tokens;
                day_cost += r.cost_micros;
            }
        }
        over("daily token", day_tokens as f64, self.daily_tokens.map(|n| n as f64), "")?;
        over("monthly token", month_tokens as f64, self.monthly_tokens.map(|n| n as f64), "")?;
        over("daily cost", day_cost as f64 / 1e6, self.daily_cost, "$")?;
        over("monthly cost", month_cost as f64 / 1e6, self.monthly_cost, "$")
    }
}

fn over(what: &str, used: f64, limit: Option<f64>, unit: &str) -> Result<(), StepError> {
    match limit {
        Some(limit) if used >= limit => Err(StepError::new(
            ErrorKind::Budget,
            format!(
                "the workspace's {what} budget is used up ({unit}{used} of {unit}{limit}); nothing was sent"
            ),
        )),
        _ => Ok(()),
    }
}
