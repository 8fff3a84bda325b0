//! Validated names: step ids and flow names can only be built valid.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, String> {
                $check(text).map(|()| Self(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A step id: letters, digits and `_`, not starting with a digit, so that
    /// `.steps.<id>.output` works in jq without quoting.
    StepId,
    check_step_id
);

name_type!(
    /// A flow name: lowercase letters, digits, `-` and `_`, starting with a letter or digit.
    /// `agent.<agent name>` names the flow that runs an agent directly; only Steward makes
    /// those (see [`FlowName::is_agent_runner`]).
    FlowName,
    check_flow_name
);

name_type!(
    /// An agent name: lowercase letters, digits, `-` and `_`, starting with a letter or digit.
    AgentName,
    check_agent_name
);

/// What starts the name of a flow that runs an agent directly.
pub const AGENT_RUNNER_PREFIX: &str = "agent.";

impl FlowName {
    /// The flow that runs `agent` directly.
    pub fn agent_runner(agent: &AgentName) -> Self {
        Self(format!("{AGENT_RUNNER_PREFIX}{agent}"))
    }

    /// Whether this names an agent's runner flow, which people cannot apply themselves.
    pub fn is_agent_runner(&self) -> bool {
        self.0.starts_with(AGENT_RUNNER_PREFIX)
    }
}

name_type!(
    /// A connection name: 1 to 64 letters, digits, `-` and `_` (as the vault accepts them).
    ConnectionName,
    check_connection_name
);

fn check_connection_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{s}` is not a connection name: 1 to 64 letters, digits, `-` or `_`"))
    }
}

fn check_step_id(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok_first && ok_rest && s.len() <= 64 {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a valid step id: use letters, digits and `_`, not starting with a digit \
             (so that `.steps.{}.output` works in expressions), at most 64 characters",
            s.replace('-', "_")
        ))
    }
}

fn check_flow_name(s: &str) -> Result<(), String> {
    let plain = s.strip_prefix(AGENT_RUNNER_PREFIX).unwrap_or(s);
    check_plain_name(plain, s, "flow name")
}

fn check_agent_name(s: &str) -> Result<(), String> {
    check_plain_name(s, s, "agent name")
}

fn check_plain_name(plain: &str, s: &str, what: &str) -> Result<(), String> {
    let mut chars = plain.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok_first && ok_rest && plain.len() <= 100 {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a valid {what}: use lowercase letters, digits, `-` and `_`, at most 100 characters"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids() {
        assert!(StepId::parse("lookup_2").is_ok());
        assert!(StepId::parse("_x").is_ok());
        let err = StepId::parse("look-up").expect_err("dash");
        assert!(err.contains("look_up"), "{err}");
        assert!(StepId::parse("2x").is_err());
        assert!(StepId::parse("").is_err());
    }

    #[test]
    fn flow_names() {
        assert!(FlowName::parse("enrich-signup").is_ok());
        assert!(FlowName::parse("Enrich").is_err());
        assert!(FlowName::parse("-x").is_err());
        let runner = FlowName::parse("agent.triage").expect("an agent's runner flow");
        assert!(runner.is_agent_runner());
        assert_eq!(runner, FlowName::agent_runner(&AgentName::parse("triage").expect("agent")));
        assert!(FlowName::parse("agent.").is_err());
        assert!(FlowName::parse("agent.a.b").is_err());
        assert!(FlowName::parse("other.x").is_err());
        assert!(AgentName::parse("agent.x").is_err());
    }
}
