//! Agents: a definition (instructions, a model, tools, limits) run as a durable loop of model
//! turns and tool calls. This crate holds what needs no store: the definition format, the
//! model provider clients, the tools' protocols and the loop's decisions. The executor
//! journals every turn and call, so a restarted run continues from the journal.

pub mod definition;
pub mod mcp;
pub mod pii;
pub mod pricing;
pub mod provider;
pub mod turns;
