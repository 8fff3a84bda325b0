//! jq expressions (via jaq): compiled once when a flow is loaded, evaluated against a run's
//! context (`inputs`, `steps`, `vars`, `run`, `trigger`, `item`, `index`, `error`).
//!
//! Invariant: expressions are pure. The filters that read the environment, the clock, or stdin
//! (`env`, `now`, `input`, `localtime`, ...) are not available, so evaluating the same
//! expression on the same context always gives the same value.

use std::fmt;
use std::sync::Arc;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Native, ValXs, Vars, data};
use jaq_json::Val;
use serde_json::Value;

use crate::context::Context;

type Data = data::JustLut<Val>;
type Filter = jaq_core::Filter<Data>;

/// Native filters left out because they would make an expression impure or leak the host.
const DENIED: &[&str] = &[
    "env",
    "now",
    "input",
    "inputs",
    "debug",
    "stderr",
    "halt",
    "halt_error",
    "localtime",
    "strflocaltime",
    "$__prog_args",
    "get_search_list",
    "get_prog_origin",
    "get_jq_origin",
    "input_filename",
    "input_line_number",
];

/// Stands in for a denied native filter, which the standard definitions still refer to.
fn denied<'a, D: jaq_core::DataT>(_: jaq_core::Cv<'a, D>) -> ValXs<'a, D::V<'a>> {
    let err = jaq_core::Error::str("this filter is not available in Steward expressions");
    Box::new(std::iter::once(Err(jaq_core::Exn::from(err))))
}

/// For each byte of a jq program, whether it is code (true) or inside a string literal (false).
/// String literals are skipped by the scans below so that `"now"` or `"}}"` stay text.
pub(crate) fn code_mask(source: &str) -> Vec<bool> {
    let bytes = source.as_bytes();
    let mut mask = vec![true; bytes.len()];
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string || b == b'"' {
            mask[i] = false;
        }
        if in_string && b == b'\\' {
            if let Some(m) = mask.get_mut(i + 1) {
                *m = false;
            }
            i += 1;
        } else if b == b'"' {
            in_string = !in_string;
        }
        i += 1;
    }
    mask
}

/// Finds a call of a denied filter: an identifier (outside string literals) not preceded by
/// `.` or `$`, so field names such as `.env` stay usable.
fn denied_use(source: &str) -> Option<(usize, &'static str)> {
    let bytes = source.as_bytes();
    let mask = code_mask(source);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !mask[i] {
            i += 1;
            continue;
        }
        if b.is_ascii_alphabetic() || b == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let prev = source[..start].trim_end().as_bytes().last().copied();
            let next = source[i..].trim_start().as_bytes().first().copied();
            let word = &source[start..i];
            // `{inputs: ...}` and `{inputs}` name object keys, not filters.
            let object_key = next == Some(b':')
                || (matches!(prev, Some(b'{' | b',')) && matches!(next, Some(b'}' | b',')));
            if !matches!(prev, Some(b'.' | b'$'))
                && !object_key
                && let Some(name) = DENIED.iter().find(|d| **d == word)
            {
                return Some((start, name));
            }
            continue;
        }
        i += 1;
    }
    None
}

/// Steward's own definitions (`secret/1`).
fn steward_defs() -> impl Iterator<Item = jaq_core::load::parse::Def<&'static str>> {
    jaq_core::load::parse(crate::secret::SECRET_DEF, |p| p.defs()).unwrap_or_default().into_iter()
}

/// A compiled jq expression together with its source.
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    filter: Arc<Filter>,
    quick: bool,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A jq program that does not compile; `offset` is a byte offset into the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub offset: usize,
    pub message: String,
}

/// An expression failed while evaluating.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expression `{expression}` failed: {message}")]
pub struct EvalError {
    pub expression: String,
    pub message: String,
}

impl Expr {
    /// Compiles a jq program.
    pub fn compile(source: &str) -> Result<Self, CompileError> {
        let arena = Arena::default();
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs()).chain(steward_defs());
        let loader = Loader::new(defs);
        let modules =
            loader.load(&arena, File { code: source, path: () }).map_err(|errs| load_error(source, errs))?;
        if let Some((offset, name)) = denied_use(source) {
            return Err(CompileError {
                offset,
                message: format!(
                    "`{name}` is not available: expressions cannot read the environment, the \
                     clock or other input; pass what you need in through the flow's inputs"
                ),
            });
        }
        let funs = jaq_core::funs::<Data>().chain(jaq_std::funs()).chain(jaq_json::funs()).map(
            |(name, args, native)| {
                if DENIED.contains(&name) {
                    (name, args, Native::<Data>::new(denied::<Data>))
                } else {
                    (name, args, native)
                }
            },
        );
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| compile_error(source, errs))?;
        Ok(Self { source: source.into(), filter: Arc::new(filter), quick: crate::quick::is_quick(source) })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the program certainly finishes quickly: no loops, recursion or iteration of its
    /// own and a bounded number of outputs (see `quick.rs`). Such a program may be evaluated
    /// in place; any other may run for as long as its step's timeout allows.
    pub fn is_quick(&self) -> bool {
        self.quick
    }

    /// Evaluates to exactly one value: no output is `null`; several outputs are an error
    /// (collect them with `[...]`).
    pub fn eval(&self, input: &Value) -> Result<Value, EvalError> {
        self.eval_in(&Context::from_json(input))
    }

    /// [`Expr::eval`] on a context already converted to jq values.
    pub fn eval_in(&self, input: &Context) -> Result<Value, EvalError> {
        let mut values = self.eval_all_in(input)?;
        match values.len() {
            0 => Ok(Value::Null),
            1 => Ok(values.remove(0)),
            n => Err(self.error(format!(
                "it produced {n} values where one was expected; wrap it in [ ... ] to collect them"
            ))),
        }
    }

    /// Evaluates to every value the program outputs.
    pub fn eval_all(&self, input: &Value) -> Result<Vec<Value>, EvalError> {
        self.eval_all_in(&Context::from_json(input))
    }

    /// [`Expr::eval_all`] on a context already converted to jq values.
    pub fn eval_all_in(&self, input: &Context) -> Result<Vec<Value>, EvalError> {
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        self.filter
            .id
            .run((ctx, input.0.clone()))
            .map(jaq_core::unwrap_valr)
            .map(|r| r.map(|v| from_val(&v)).map_err(|e| self.error(e.to_string())))
            .collect()
    }

    fn error(&self, message: String) -> EvalError {
        EvalError { expression: self.source.to_string(), message }
    }
}

/// Converts a jaq value to JSON. Non-finite numbers become null, as in jq's own output.
pub(crate) fn from_val(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => num_to_json(n),
        Val::BStr(b) | Val::TStr(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        Val::Arr(items) => Value::Array(items.iter().map(from_val).collect()),
        Val::Obj(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Val::TStr(s) | Val::BStr(s) => String::from_utf8_lossy(s).into_owned(),
                        other => other.to_string(),
                    };
                    (key, from_val(v))
                })
                .collect(),
        ),
    }
}

fn num_to_json(n: &jaq_json::Num) -> Value {
    use jaq_json::Num;
    match n {
        Num::Int(i) => Value::from(*i as i64),
        Num::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Num::BigInt(_) | Num::Dec(_) => {
            let text = n.to_string();
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    }
}

fn load_error<P>(source: &str, errs: jaq_core::load::Errors<&str, P>) -> CompileError {
    use jaq_core::load::Error;
    let first = errs.into_iter().next().map(|(_, e)| e);
    let (part, message) = match first {
        Some(Error::Lex(errs)) => match errs.into_iter().next() {
            Some((expect, part)) => (part, format!("expected {}", expect.as_str())),
            None => ("", "invalid expression".to_owned()),
        },
        Some(Error::Parse(errs)) => match errs.into_iter().next() {
            Some((expect, part)) => (part, format!("expected {}", expect.as_str())),
            None => ("", "invalid expression".to_owned()),
        },
        Some(Error::Io(errs)) => ("", format!("imports are not allowed ({} found)", errs.len())),
        None => ("", "invalid expression".to_owned()),
    };
    CompileError { offset: offset_of(source, part), message: describe_found(part, message) }
}

fn compile_error<P>(source: &str, errs: jaq_core::compile::Errors<&str, P>) -> CompileError {
    let first = errs.into_iter().flat_map(|(_, e)| e).next();
    match first {
        Some((name, undefined)) => CompileError {
            offset: offset_of(source, name),
            message: format!("undefined {} `{name}`", undefined.as_str()),
        },
        None => CompileError { offset: 0, message: "invalid expression".to_owned() },
    }
}

fn describe_found(part: &str, message: String) -> String {
    let found: String = part.chars().take(12).collect();
    if found.trim().is_empty() {
        format!("{message}, found the end of the expression")
    } else {
        format!("{message}, found `{found}`")
    }
}

/// Byte offset of `part` inside `whole` when it is a sub-slice, else the end.
fn offset_of(whole: &str, part: &str) -> usize {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    if p >= start && p <= start + whole.len() { p - start } else { whole.len() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(src: &str, input: Value) -> Value {
        Expr::compile(src).expect("compiles").eval(&input).expect("evaluates")
    }

    #[test]
    fn evaluates_paths_and_arithmetic() {
        let input = json!({"steps": {"a": {"output": {"n": 41}}}});
        assert_eq!(eval(".steps.a.output.n + 1", input), json!(42));
    }

    #[test]
    fn std_library_is_available() {
        assert_eq!(eval("[.[] | select(. > 1)] | map(. * 2)", json!([1, 2, 3])), json!([4, 6]));
        assert_eq!(eval("\"a-b\" | split(\"-\")", Value::Null), json!(["a", "b"]));
        assert_eq!(eval("@base64", json!("hi")), json!("aGk="));
    }

    #[test]
    fn impure_filters_are_not_available() {
        for src in ["env", "now", "input", "$ENV", "localtime", ". | debug", "1 as $x | now"] {
            assert!(Expr::compile(src).is_err(), "{src} must not compile");
        }
        // Field names and strings that merely look like them are fine.
        assert_eq!(eval(".env + \"now\"", json!({"env": "a"})), json!("anow"));
        assert_eq!(
            eval("{inputs: .a, now: 1} | {inputs, now}", json!({"a": 2})),
            json!({"inputs": 2, "now": 1})
        );
    }

    #[test]
    fn syntax_errors_point_into_the_source() {
        let err = Expr::compile(".a | | .b").expect_err("invalid");
        assert_eq!(err.offset, 5, "{err:?}");
    }

    #[test]
    fn undefined_names_are_compile_errors() {
        let err = Expr::compile(".a | frobnicate").expect_err("undefined");
        assert_eq!(err.offset, 5);
        assert!(err.message.contains("frobnicate"), "{}", err.message);
    }

    #[test]
    fn multiple_outputs_are_an_error_and_empty_is_null() {
        let e = Expr::compile(".[]").expect("compiles");
        assert!(e.eval(&json!([1, 2])).expect_err("two values").message.contains("2 values"));
        assert_eq!(eval("empty", Value::Null), Value::Null);
    }

    #[test]
    fn runtime_errors_are_reported() {
        let e = Expr::compile(".a + 1").expect("compiles");
        let err = e.eval(&json!({"a": "x"})).expect_err("type error");
        assert!(err.message.contains("cannot"), "{}", err.message);
    }

    #[test]
    fn numbers_round_trip() {
        assert_eq!(
            eval(".", json!({"i": 3, "f": 1.5, "big": 12345678901_i64})),
            json!({"i": 3, "f": 1.5, "big": 12345678901_i64})
        );
    }

    #[test]
    fn compiled_expressions_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Expr>();
    }
}
