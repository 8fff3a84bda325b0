//! Compiled flow versions, parsed once per process and shared by every run of the version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use steward_engine::Plan;
use steward_flow::{Flow, Step, StepId};
use steward_store::FlowVersion;

use crate::Error;

/// A flow version ready to execute.
#[derive(Debug)]
pub struct Compiled {
    pub version: FlowVersion,
    pub flow: Flow,
    pub plan: Plan,
    steps: HashMap<StepId, Step>,
}

impl Compiled {
    pub fn new(version: FlowVersion) -> Result<Self, Error> {
        let loaded = steward_flow::load(&version.file_name, &version.source)
            .map_err(|e| Error::Invalid(format!("stored flow version no longer loads: {e}")))?;
        let flow = loaded.flow;
        let plan = Plan::new(&flow);
        let mut steps = HashMap::new();
        index(&flow.steps, &mut steps);
        Ok(Self { version, flow, plan, steps })
    }

    pub fn step(&self, id: &StepId) -> Option<&Step> {
        self.steps.get(id)
    }
}

fn index(steps: &[Step], out: &mut HashMap<StepId, Step>) {
    for s in steps {
        out.insert(s.id.clone(), s.clone());
        for block in steward_flow::children(s) {
            index(block, out);
        }
    }
}

/// A cache of compiled versions by version id. Versions are immutable, so entries never go
/// stale.
#[derive(Debug, Default)]
pub struct Catalog {
    entries: Mutex<HashMap<String, Arc<Compiled>>>,
}

impl Catalog {
    pub fn get(&self, id: &str) -> Option<Arc<Compiled>> {
        self.entries.lock().ok().and_then(|m| m.get(id).cloned())
    }

    pub fn insert(&self, compiled: Compiled) -> Arc<Compiled> {
        let compiled = Arc::new(compiled);
        if let Ok(mut m) = self.entries.lock() {
            m.insert(compiled.version.id.clone(), compiled.clone());
        }
        compiled
    }
}
