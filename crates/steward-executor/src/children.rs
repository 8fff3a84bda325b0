//! Starting runs: new runs from a caller, and child runs from `flow` steps.

use std::sync::Arc;

use serde_json::Value;
use steward_engine::{Engine, ErrorKind, Event, RunState, StepError, Timestamp};
use steward_store::{FlowVersion, NewRun, Store};

use crate::Error;
use crate::catalog::{Catalog, Compiled};

/// Starts runs; cheap to clone.
#[derive(Clone)]
pub struct ChildStarter {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) catalog: Arc<Catalog>,
}

impl std::fmt::Debug for ChildStarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildStarter")
    }
}

impl ChildStarter {
    /// The compiled form of a stored version.
    pub async fn compiled(&self, workspace: &str, version_id: &str) -> Result<Arc<Compiled>, Error> {
        if let Some(c) = self.catalog.get(version_id) {
            return Ok(c);
        }
        let version = self.store.version(workspace, version_id).await?;
        Ok(self.catalog.insert(Compiled::new(version)?))
    }

    /// Creates a queued run of `version` with `inputs` (checked against the flow's inputs).
    pub async fn start(
        &self,
        version: &FlowVersion,
        inputs: Value,
        id: String,
        parent: Option<(String, String)>,
        now: Timestamp,
    ) -> Result<String, Error> {
        let (run, events) = self.prepare(version, inputs, id, parent, None, now).await?;
        let id = run.id.clone();
        self.store.create_run(run, &events).await?;
        Ok(id)
    }

    /// A new run and its first events, checked but not stored.
    pub(crate) async fn prepare(
        &self,
        version: &FlowVersion,
        inputs: Value,
        id: String,
        parent: Option<(String, String)>,
        trigger: Option<Value>,
        now: Timestamp,
    ) -> Result<(NewRun, Vec<Event>), Error> {
        let compiled = self.compiled(&version.workspace, &version.id).await?;
        let inputs = compiled.flow.bind_inputs(&inputs).map_err(Error::Invalid)?;
        check_vars(&compiled, &inputs)?;
        let mut state = RunState::default();
        let events =
            Engine::new(&compiled.plan).start_triggered(&mut state, &id, inputs.clone(), trigger, now);
        let run = NewRun {
            id,
            workspace: version.workspace.clone(),
            flow_version_id: version.id.clone(),
            inputs,
            parent,
            concurrency_key: version.concurrency.map(|_| version.flow_id.clone()),
            concurrency_limit: version.concurrency,
            now,
            leased_to: None,
        };
        Ok((run, events))
    }

    /// Starts the child run of a `flow` step. The child's id is derived from the parent run,
    /// step and attempt, so an attempt that runs again after a crash finds the child it
    /// already started instead of starting a second one.
    #[expect(clippy::too_many_arguments, reason = "each argument is one fact of the call")]
    pub async fn start_child(
        &self,
        workspace: &str,
        flow: &str,
        inputs: Value,
        parent_run: &str,
        step_key: &str,
        attempt: u32,
        now: Timestamp,
    ) -> Result<String, StepError> {
        let name = format!("{parent_run}/{step_key}/{attempt}");
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string();
        if self.store.run(workspace, &id).await.is_ok() {
            return Ok(id);
        }
        let version = self
            .store
            .latest_version(workspace, flow)
            .await
            .map_err(|e| StepError::new(ErrorKind::Internal, e.to_string()))?
            .ok_or_else(|| {
                StepError::new(ErrorKind::Input, format!("there is no flow named `{flow}` to call"))
            })?;
        let parent = Some((parent_run.to_owned(), step_key.to_owned()));
        match self.start(&version, inputs, id, parent, now).await {
            Ok(id) => Ok(id),
            Err(Error::Invalid(m)) => Err(StepError::new(ErrorKind::Input, format!("calling `{flow}`: {m}"))),
            Err(Error::Store(steward_store::Error::Conflict(_))) => {
                Ok(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string())
            }
            Err(e) => Err(StepError::new(ErrorKind::Internal, e.to_string())),
        }
    }
}

/// Vars depend only on inputs, so a var that fails to evaluate is found before the run exists.
fn check_vars(compiled: &Compiled, inputs: &Value) -> Result<(), Error> {
    let ctx = serde_json::json!({ "inputs": inputs, "run": {}, "trigger": {}, "vars": {} });
    for (name, t) in &compiled.flow.vars {
        t.render(&ctx)
            .map_err(|e| Error::Invalid(format!("var `{name}` cannot be computed from these inputs: {e}")))?;
    }
    Ok(())
}
