//! Checking a run's inputs against the flow's declared inputs, before the run is accepted.

use serde_json::{Map, Value};

use crate::model::{Flow, InputType};

impl Flow {
    /// Applies defaults and checks required inputs and types. Inputs the flow does not declare
    /// are refused, so a typo in an input name is not silently ignored.
    pub fn bind_inputs(&self, given: &Value) -> Result<Value, String> {
        let given = match given {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            other => return Err(format!("inputs must be a JSON object, not {other}")),
        };
        let mut problems = Vec::new();
        for key in given.keys() {
            if !self.inputs.contains_key(key) {
                let known: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
                problems.push(if known.is_empty() {
                    format!("unknown input `{key}`: the flow declares no inputs")
                } else {
                    format!("unknown input `{key}`; the flow's inputs are: {}", known.join(", "))
                });
            }
        }
        let mut out = Map::new();
        for (name, spec) in &self.inputs {
            match given.get(name).or(spec.default.as_ref()) {
                Some(v) if type_matches(spec.kind, v) => {
                    out.insert(name.clone(), v.clone());
                }
                Some(v) => problems.push(format!("input `{name}` must be {}, got {v}", type_name(spec.kind))),
                None if spec.required.unwrap_or(true) => problems.push(format!("input `{name}` is required")),
                None => {}
            }
        }
        if problems.is_empty() { Ok(Value::Object(out)) } else { Err(problems.join("; ")) }
    }
}

fn type_matches(kind: InputType, v: &Value) -> bool {
    match kind {
        InputType::Any => true,
        InputType::String => v.is_string(),
        InputType::Number => v.is_number(),
        InputType::Integer => v.is_i64() || v.is_u64(),
        InputType::Boolean => v.is_boolean(),
        InputType::Object => v.is_object(),
        InputType::Array => v.is_array(),
    }
}

fn type_name(kind: InputType) -> &'static str {
    match kind {
        InputType::Any => "any value",
        InputType::String => "a string",
        InputType::Number => "a number",
        InputType::Integer => "an integer",
        InputType::Boolean => "true or false",
        InputType::Object => "an object",
        InputType::Array => "a list",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn flow() -> crate::Flow {
        let text = "name: t\ninputs:\n  email: { type: string }\n  n: { type: integer, default: 3 }\n  tag: { required: false }\nsteps: [{id: a, transform: '1'}]\n";
        crate::load("t.yaml", text).expect("valid").flow
    }

    #[test]
    fn applies_defaults_and_keeps_given_values() {
        assert_eq!(flow().bind_inputs(&json!({"email": "a@b.c"})), Ok(json!({"email": "a@b.c", "n": 3})));
    }

    #[test]
    fn reports_missing_wrong_and_unknown_inputs() {
        let err = flow().bind_inputs(&json!({"n": "x", "emial": 1})).expect_err("invalid");
        assert!(err.contains("unknown input `emial`"), "{err}");
        assert!(err.contains("input `email` is required"), "{err}");
        assert!(err.contains("input `n` must be an integer"), "{err}");
    }
}
