//! [`Context`]: the value expressions read, held as jq values.
//!
//! Evaluating an expression against JSON converts the whole input to jq values first, so an
//! executor that rebuilt a run's context as JSON for every step paid for every earlier output
//! at every step. A `Context` is converted once and shares its parts (objects and arrays are
//! reference counted), so an executor can keep one per run, update it as steps finish, and hand
//! each step a cheap copy. [`Object`] builds and updates objects in place.

use jaq_json::{Map, Num, Rc, Val};
use serde_json::Value;

/// A value expressions can read; cheap to clone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context(pub(crate) Val);

impl Context {
    /// The same value as `value`, converted as jq reads JSON input.
    pub fn from_json(value: &Value) -> Self {
        Self(to_val(value))
    }

    /// The value as JSON, for code that needs JSON (the JavaScript sandbox).
    pub fn to_json(&self) -> Value {
        crate::expr::from_val(&self.0)
    }

    pub fn null() -> Self {
        Self(Val::Null)
    }

    pub fn string(text: &str) -> Self {
        Self(Val::utf8_str(text.to_owned()))
    }
}

impl From<Object> for Context {
    fn from(object: Object) -> Self {
        Self(Val::Obj(object.0))
    }
}

/// A JSON object of [`Context`] values, keeping its keys in insertion order as JSON objects
/// do here. Cloning it is cheap; changing a clone copies the fields once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object(Rc<Map>);

impl Object {
    /// Sets `key`: a new key goes last, an existing one keeps its place.
    pub fn insert(&mut self, key: &str, value: Context) {
        Rc::make_mut(&mut self.0).insert(key_val(key), value.0);
    }

    /// Sets `key` in an object whose keys are sorted, keeping them sorted (in the byte order of
    /// their UTF-8, as `BTreeMap<String, _>` sorts them).
    pub fn insert_sorted(&mut self, key: &str, value: Context) {
        Rc::make_mut(&mut self.0).insert_sorted(key_val(key), value.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn key_val(key: &str) -> Val {
    Val::utf8_str(key.to_owned())
}

/// JSON to jq values, as jaq's own JSON reader builds them.
fn to_val(value: &Value) -> Val {
    match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Val::Num(Num::from_integral(u)),
            (None, Some(i)) => Val::Num(Num::from_integral(i)),
            (None, None) => Val::Num(Num::Float(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => Val::utf8_str(s.clone()),
        Value::Array(items) => items.iter().map(to_val).collect(),
        Value::Object(fields) => Val::obj(fields.iter().map(|(k, v)| (key_val(k), to_val(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_round_trips_with_key_order_and_numbers() {
        let value = json!({"z": 1, "a": [1.5, -2, 18446744073709551615_u64, null, true], "m": {"k": "v"}});
        let back = Context::from_json(&value).to_json();
        assert_eq!(back, value);
        let keys: Vec<&String> = back.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn converts_like_jaqs_json_reader() {
        let value = json!({"i": -3, "u": 7, "f": 0.25, "s": "é", "big": 12345678901_i64});
        let read: Val = serde::Deserialize::deserialize(&value).expect("reads");
        assert_eq!(Context::from_json(&value).0, read);
    }

    #[test]
    fn objects_keep_insertion_order_or_sorted_order() {
        let mut o = Object::default();
        o.insert("b", Context::null());
        o.insert("a", Context::string("x"));
        o.insert("b", Context::string("y"));
        assert_eq!(Context::from(o).to_json().to_string(), r#"{"b":"y","a":"x"}"#);

        let mut s = Object::default();
        for key in ["s2", "s10", "s1", "s10"] {
            s.insert_sorted(key, Context::string(key));
        }
        assert_eq!(Context::from(s).to_json().to_string(), r#"{"s1":"s1","s10":"s10","s2":"s2"}"#);
    }

    #[test]
    fn changing_a_clone_leaves_the_original() {
        let mut a = Object::default();
        a.insert("k", Context::null());
        let mut b = a.clone();
        b.insert("k", Context::string("changed"));
        assert_eq!(Context::from(a).to_json(), json!({"k": null}));
        assert_eq!(Context::from(b).to_json(), json!({"k": "changed"}));
    }
}
