//! The shape of a flow as the engine sees it: nodes in blocks, with dependencies, and no
//! expressions. Built once per flow version.

use std::collections::HashMap;

use steward_flow::{Duration, Flow, OnError, RetryPolicy, Step, StepId, StepKind};

/// Index of a node (a step definition) in [`Plan::nodes`].
pub type NodeId = usize;
/// Index of a block (a list of steps) in [`Plan::blocks`].
pub type BlockId = usize;

/// What kind of work a node needs from the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// Computed or performed by the executor in one go (http, transform, code).
    Task,
    /// Waits for a time the executor computes.
    Wait,
    /// Suspends until a person decides or the timeout passes.
    Approval { approve_on_timeout: bool },
    /// Starts a child run and waits for it.
    Call,
    /// An agent: runs again and again, recording its progress (`step_recorded`), until it has
    /// an answer; it may suspend for a person's decision and continues after it.
    Agent,
    /// Runs one of `cases` (or none), chosen by the executor.
    Branch { cases: Vec<BlockId> },
    /// Runs `body` once per item, at most `parallelism` items at a time.
    ForEach { body: BlockId, parallelism: u32 },
}

/// What happens when a node fails for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorMode {
    Fail,
    Continue,
    Handle(BlockId),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: StepId,
    pub block: BlockId,
    pub deps: Vec<NodeId>,
    /// The nodes that list this one in `deps`, in order: the only ones that can become ready
    /// when this one finishes.
    pub dependents: Vec<NodeId>,
    pub kind: NodeKind,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub on_error: ErrorMode,
}

#[derive(Debug, Clone, Default)]
pub struct Block {
    /// Nodes in file order; the last one's output is the block's output.
    pub nodes: Vec<NodeId>,
    /// The container node and why it runs this block; `None` for the root.
    pub owner: Option<(NodeId, BlockRole)>,
}

/// Why a nested block runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRole {
    Case,
    Body,
    Handler,
}

/// A flow's structure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Whether the flow declares an `output` the executor must render; otherwise the run's
    /// output is the last top-level step's output.
    pub has_output: bool,
    pub nodes: Vec<Node>,
    pub blocks: Vec<Block>,
    by_id: HashMap<StepId, NodeId>,
}

/// The block every run starts with.
pub const ROOT: BlockId = 0;

impl Plan {
    pub fn new(flow: &Flow) -> Self {
        let mut plan = Plan {
            has_output: flow.output.is_some(),
            nodes: Vec::new(),
            blocks: vec![Block::default()],
            by_id: HashMap::new(),
        };
        plan.add_block(ROOT, &flow.steps);
        plan
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub fn find(&self, id: &StepId) -> Option<NodeId> {
        self.by_id.get(id).copied()
    }

    fn new_block(&mut self, steps: &[Step], owner: NodeId, role: BlockRole) -> BlockId {
        self.blocks.push(Block { nodes: Vec::new(), owner: Some((owner, role)) });
        let b = self.blocks.len() - 1;
        self.add_block(b, steps);
        b
    }

    fn add_block(&mut self, block: BlockId, steps: &[Step]) {
        let first = self.nodes.len();
        let deps = steward_flow::dependencies(steps);
        // Reserve node ids for the block first so dependencies can refer to them.
        for (i, s) in steps.iter().enumerate() {
            self.nodes.push(Node {
                id: s.id.clone(),
                block,
                deps: deps[i].iter().map(|d| first + d).collect(),
                dependents: Vec::new(),
                kind: NodeKind::Task,
                retry: s.retry.clone(),
                timeout: s.timeout,
                on_error: ErrorMode::Fail,
            });
            self.by_id.insert(s.id.clone(), first + i);
            self.blocks[block].nodes.push(first + i);
        }
        for (i, ds) in deps.iter().enumerate() {
            for d in ds {
                self.nodes[first + d].dependents.push(first + i);
            }
        }
        for (i, s) in steps.iter().enumerate() {
            let me = first + i;
            let kind = match &s.kind {
                StepKind::Wait(_) => NodeKind::Wait,
                StepKind::Approval(a) => NodeKind::Approval {
                    approve_on_timeout: a.on_timeout == steward_flow::TimeoutDecision::Approve,
                },
                StepKind::Flow(_) => NodeKind::Call,
                StepKind::Agent(_) => NodeKind::Agent,
                StepKind::Branch(b) => NodeKind::Branch {
                    cases: vec![
                        self.new_block(&b.then, me, BlockRole::Case),
                        self.new_block(&b.otherwise, me, BlockRole::Case),
                    ],
                },
                StepKind::Switch(sw) => {
                    let mut cases: Vec<BlockId> =
                        sw.cases.values().map(|c| self.new_block(c, me, BlockRole::Case)).collect();
                    cases.push(self.new_block(&sw.default, me, BlockRole::Case));
                    NodeKind::Branch { cases }
                }
                StepKind::ForEach(f) => NodeKind::ForEach {
                    body: self.new_block(&f.steps, me, BlockRole::Body),
                    parallelism: f.parallelism,
                },
                StepKind::Http(_) | StepKind::Transform(_) | StepKind::Code(_) => NodeKind::Task,
            };
            let on_error = match &s.on_error {
                OnError::Fail => ErrorMode::Fail,
                OnError::Continue => ErrorMode::Continue,
                OnError::Handle(steps) => ErrorMode::Handle(self.new_block(steps, me, BlockRole::Handler)),
            };
            self.nodes[me].kind = kind;
            self.nodes[me].on_error = on_error;
        }
    }
}
