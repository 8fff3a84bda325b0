//! Templates: JSON values whose strings may hold `${{ jq }}` expressions.
//!
//! A string that is exactly one expression yields the expression's JSON value; a string with
//! text around expressions interpolates (strings as they are, `null` as nothing, anything else
//! as compact JSON). `$${{` writes a literal `${{`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::context::Context;
use crate::expr::{CompileError, EvalError, Expr};

/// A parsed and compiled template.
#[derive(Clone, PartialEq)]
pub struct Template {
    raw: Value,
    node: Node,
}

#[derive(Clone, PartialEq)]
enum Node {
    Literal(Value),
    Expr(Expr),
    Interp(Vec<Part>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

#[derive(Clone, PartialEq)]
enum Part {
    Text(String),
    Expr(Expr),
}

/// A template whose expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid expression `{expression}`: {message}")]
pub struct TemplateError {
    pub expression: String,
    pub message: String,
}

impl Template {
    pub fn parse(raw: Value) -> Result<Self, TemplateError> {
        let node = Node::parse(&raw)?;
        Ok(Self { raw, node })
    }

    /// A template holding a literal value with no expressions.
    pub fn literal(raw: Value) -> Self {
        Self { node: Node::Literal(raw.clone()), raw }
    }

    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Renders the template against a context value.
    pub fn render(&self, ctx: &Value) -> Result<Value, EvalError> {
        self.render_in(&Context::from_json(ctx))
    }

    /// [`Template::render`] against a context already converted to jq values.
    pub fn render_in(&self, ctx: &Context) -> Result<Value, EvalError> {
        self.node.render(ctx)
    }

    /// Every expression in the template, in document order.
    pub fn expressions(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        self.node.collect(&mut out);
        out
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({})", self.raw)
    }
}

impl Node {
    fn parse(raw: &Value) -> Result<Self, TemplateError> {
        Ok(match raw {
            Value::String(s) => parse_string(s)?,
            Value::Array(items) => Node::Array(items.iter().map(Node::parse).collect::<Result<_, _>>()?),
            Value::Object(map) => Node::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), Node::parse(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => Node::Literal(other.clone()),
        })
    }

    fn render(&self, ctx: &Context) -> Result<Value, EvalError> {
        Ok(match self {
            Node::Literal(v) => v.clone(),
            Node::Expr(e) => e.eval_in(ctx)?,
            Node::Interp(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(e) => push_interpolated(&mut out, e.eval_in(ctx)?),
                    }
                }
                Value::String(out)
            }
            Node::Array(items) => {
                Value::Array(items.iter().map(|n| n.render(ctx)).collect::<Result<_, _>>()?)
            }
            Node::Object(fields) => {
                let mut map = Map::new();
                for (k, n) in fields {
                    map.insert(k.clone(), n.render(ctx)?);
                }
                Value::Object(map)
            }
        })
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Expr>) {
        match self {
            Node::Literal(_) => {}
            Node::Expr(e) => out.push(e),
            Node::Interp(parts) => out.extend(parts.iter().filter_map(|p| match p {
                Part::Expr(e) => Some(e),
                Part::Text(_) => None,
            })),
            Node::Array(items) => items.iter().for_each(|n| n.collect(out)),
            Node::Object(fields) => fields.iter().for_each(|(_, n)| n.collect(out)),
        }
    }
}

fn push_interpolated(out: &mut String, value: Value) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push_str(&s),
        other => out.push_str(&other.to_string()),
    }
}

fn parse_string(s: &str) -> Result<Node, TemplateError> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${{") {
        if rest[..i].ends_with('$') {
            text.push_str(&rest[..i - 1]);
            text.push_str("${{");
            rest = &rest[i + 3..];
            continue;
        }
        text.push_str(&rest[..i]);
        let body = &rest[i + 3..];
        let end = find_close(body).ok_or_else(|| TemplateError {
            expression: body.trim().to_owned(),
            message: "missing the closing `}}`".to_owned(),
        })?;
        let source = body[..end].trim();
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Expr(compile(source)?));
        rest = &body[end + 2..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(match parts.len() {
        0 => Node::Literal(Value::String(String::new())),
        1 => match parts.remove(0) {
            Part::Expr(e) => Node::Expr(e),
            Part::Text(t) => Node::Literal(Value::String(t)),
        },
        _ => Node::Interp(parts),
    })
}

fn compile(source: &str) -> Result<Expr, TemplateError> {
    if source.is_empty() {
        return Err(TemplateError {
            expression: String::new(),
            message: "the expression is empty".to_owned(),
        });
    }
    Expr::compile(source).map_err(|CompileError { offset, message }| TemplateError {
        expression: source.to_owned(),
        message: format!("{message} (at character {})", offset + 1),
    })
}

/// Finds the `}}` that closes an expression, skipping braces and string literals inside it.
fn find_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mask = crate::expr::code_mask(body);
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if !mask[i] {
            continue;
        }
        match b {
            b'{' => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b'}' if bytes.get(i + 1) == Some(&b'}') && mask.get(i + 1) == Some(&true) => return Some(i),
            _ => {}
        }
    }
    None
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        Template::parse(raw).map_err(serde::de::Error::custom)
    }
}

/// A string field that must be a single jq expression, written bare (`.a > 1`) or wrapped
/// (`${{ .a > 1 }}`); a YAML boolean is a constant condition.
#[derive(Clone, PartialEq, Debug)]
pub struct Condition(pub Expr);

impl Condition {
    pub fn parse(raw: &Value) -> Result<Self, TemplateError> {
        let source = match raw {
            Value::String(s) => {
                let t = s.trim();
                match t.strip_prefix("${{").and_then(|r| r.strip_suffix("}}")) {
                    Some(inner) => inner.trim().to_owned(),
                    None => t.to_owned(),
                }
            }
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(TemplateError {
                    expression: other.to_string(),
                    message: "expected a jq expression or a boolean".to_owned(),
                });
            }
        };
        compile(&source).map(Condition)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("${{{{ {} }}}}", self.0.source()))
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        Condition::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: Value, ctx: Value) -> Value {
        Template::parse(t).expect("parses").render(&ctx).expect("renders")
    }

    #[test]
    fn whole_expression_yields_json_value() {
        assert_eq!(render(json!("${{ .a }}"), json!({"a": [1, 2]})), json!([1, 2]));
    }

    #[test]
    fn text_around_expressions_interpolates() {
        let ctx = json!({"e": "x@y.z", "n": 3, "o": {"k": 1}, "z": null});
        assert_eq!(
            render(json!("mail=${{ .e }} n=${{.n}} o=${{ .o }} z=${{ .z }}!"), ctx),
            json!("mail=x@y.z n=3 o={\"k\":1} z=!")
        );
    }

    #[test]
    fn nested_values_render_recursively() {
        let t = json!({"h": {"X-Id": "${{ .id }}"}, "list": ["${{ .id }}", 2]});
        assert_eq!(render(t, json!({"id": "r1"})), json!({"h": {"X-Id": "r1"}, "list": ["r1", 2]}));
    }

    #[test]
    fn braces_inside_expressions_do_not_end_them() {
        assert_eq!(render(json!("${{ {a: {b: .x}} }}"), json!({"x": 1})), json!({"a": {"b": 1}}));
        assert_eq!(render(json!("${{ \"}}\" }}"), Value::Null), json!("}}"));
    }

    #[test]
    fn dollar_escapes_a_literal_opening() {
        assert_eq!(render(json!("$${{ not }}"), Value::Null), json!("${{ not }}"));
    }

    #[test]
    fn errors_name_the_expression() {
        let err = Template::parse(json!("x ${{ .a | }}")).expect_err("invalid");
        assert_eq!(err.expression, ".a |");
        let err = Template::parse(json!("${{ .a ")).expect_err("unclosed");
        assert!(err.message.contains("closing"));
    }

    #[test]
    fn conditions_accept_bare_and_wrapped_forms() {
        let ctx = json!({"n": 5});
        for raw in [json!(".n > 3"), json!("${{ .n > 3 }}"), json!(true)] {
            let c = Condition::parse(&raw).expect("parses");
            assert_eq!(c.0.eval(&ctx).expect("evaluates"), json!(true));
        }
    }
}
