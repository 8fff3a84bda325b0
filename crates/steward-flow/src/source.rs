//! Reading flow source text (YAML, or JSON as its subset) into a JSON value tree plus a map from
//! every node's path to its line and column, so later checks can point at the exact place.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::path::{Path, Segment};

/// A position in a source file, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Where each node of a parsed document starts, keyed by its path. Mapping keys are recorded
/// under the path of their value with `key = true` so "unknown key" errors point at the key.
#[derive(Debug, Default, Clone)]
pub struct Locations {
    values: HashMap<Path, Position>,
    keys: HashMap<Path, Position>,
}

impl Locations {
    /// The position of the value at `path`, or of its nearest ancestor that has one.
    pub fn value(&self, path: &Path) -> Position {
        self.lookup(&self.values, path)
    }

    /// The position of the mapping key whose value is at `path` (falls back to the value).
    pub fn key(&self, path: &Path) -> Position {
        match self.keys.get(path) {
            Some(p) => *p,
            None => self.value(path),
        }
    }

    fn lookup(&self, map: &HashMap<Path, Position>, path: &Path) -> Position {
        let mut p = path.clone();
        loop {
            if let Some(pos) = map.get(&p) {
                return *pos;
            }
            if !p.pop() {
                return Position { line: 1, column: 1 };
            }
        }
    }
}

/// A syntax error in the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

/// Parses YAML (or JSON) text into a value and the locations of its nodes.
pub fn parse(text: &str) -> Result<(Value, Locations), SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|e| SyntaxError { position: position(*e.marker()), message: e.info().to_owned() })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok((builder.root.unwrap_or(Value::Null), builder.locations))
}

fn position(m: Marker) -> Position {
    Position { line: m.line(), column: m.col() + 1 }
}

enum Frame {
    Seq { path: Path, items: Vec<Value>, anchor: usize },
    Map { path: Path, map: Map<String, Value>, key: Option<String>, anchor: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    anchors: HashMap<usize, Value>,
    locations: Locations,
    error: Option<SyntaxError>,
}

impl Builder {
    /// The path the next value will have, or `None` if the next scalar is a mapping key.
    fn next_path(&self) -> Option<Path> {
        match self.stack.last() {
            None => Some(Path::root()),
            Some(Frame::Seq { path, items, .. }) => Some(path.child(Segment::Index(items.len()))),
            Some(Frame::Map { path, key: Some(k), .. }) => Some(path.child(Segment::Key(k.clone()))),
            Some(Frame::Map { key: None, .. }) => None,
        }
    }

    fn fail(&mut self, mark: Marker, message: String) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { position: position(mark), message });
        }
    }

    fn push_value(&mut self, value: Value, anchor: usize, mark: Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, .. }) => {
                if let Some(k) = key.take() {
                    map.insert(k, value);
                } else {
                    self.fail(mark, "a mapping key must be a plain value".into());
                }
            }
        }
    }

    fn scalar(&mut self, text: String, style: TScalarStyle, anchor: usize, tag: Option<Tag>, mark: Marker) {
        let Some(path) = self.next_path() else {
            self.key(text, mark);
            return;
        };
        self.locations.values.insert(path, position(mark));
        let value = scalar_value(text, style, tag.as_ref());
        self.push_value(value, anchor, mark);
    }

    fn key(&mut self, text: String, mark: Marker) {
        let Some(Frame::Map { path, map, key, .. }) = self.stack.last_mut() else { return };
        let child = path.child(Segment::Key(text.clone()));
        if map.contains_key(&text) {
            let message = format!("duplicate key `{text}`");
            self.fail(mark, message);
            return;
        }
        let first_key = map.is_empty();
        let map_path = path.clone();
        *key = Some(text);
        self.locations.keys.insert(child, position(mark));
        // A block mapping's start is reported after its first key; the key is where it starts.
        if first_key {
            let pos = position(mark);
            let entry = self.locations.values.entry(map_path).or_insert(pos);
            if (pos.line, pos.column) < (entry.line, entry.column) {
                *entry = pos;
            }
        }
    }

    fn start(&mut self, frame_for: impl FnOnce(Path) -> Frame, mark: Marker) {
        match self.next_path() {
            Some(path) => {
                self.locations.values.insert(path.clone(), position(mark));
                self.stack.push(frame_for(path));
            }
            None => self.fail(mark, "a mapping key must be a plain value, not a list or mapping".into()),
        }
    }

    fn end(&mut self, mark: Marker) {
        let (value, anchor) = match self.stack.pop() {
            Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
            Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
            None => return,
        };
        self.push_value(value, anchor, mark);
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match event {
            Event::Scalar(text, style, anchor, tag) => self.scalar(text, style, anchor, tag, mark),
            Event::SequenceStart(anchor, _) => {
                self.start(|path| Frame::Seq { path, items: Vec::new(), anchor }, mark)
            }
            Event::MappingStart(anchor, _) => {
                self.start(|path| Frame::Map { path, map: Map::new(), key: None, anchor }, mark)
            }
            Event::SequenceEnd | Event::MappingEnd => self.end(mark),
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(value) => match self.next_path() {
                    Some(path) => {
                        self.locations.values.insert(path, position(mark));
                        self.push_value(value, 0, mark);
                    }
                    None => self.fail(mark, "an alias cannot be used as a mapping key".into()),
                },
                None => self.fail(mark, "unknown alias".into()),
            },
            Event::DocumentStart if self.root.is_some() => {
                self.fail(mark, "a flow file holds exactly one document".into())
            }
            _ => {}
        }
    }
}

/// Resolves a scalar by the YAML 1.2 core schema: quoted scalars are strings; plain ones may be
/// null, booleans or numbers.
fn scalar_value(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    if let Some(tag) = tag
        && tag.suffix == "str"
    {
        return Value::String(text);
    }
    match Yaml::from_str(&text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => {
            r.parse::<f64>().ok().and_then(Number::from_f64).map_or(Value::String(text), Value::Number)
        }
        _ => Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::parse(s)
    }

    #[test]
    fn builds_values_with_core_schema_types() {
        let (v, _) = parse("a: 1\nb: 2.5\nc: true\nd: ~\ne: '1'\nf: [x, 'y']\n").expect("parses");
        assert_eq!(v, serde_json::json!({"a":1,"b":2.5,"c":true,"d":null,"e":"1","f":["x","y"]}));
    }

    #[test]
    fn records_positions_of_values_and_keys() {
        let text = "name: x\nsteps:\n  - id: a\n    transform: '.'\n";
        let (_, loc) = parse(text).expect("parses");
        assert_eq!(loc.value(&p("steps[0].transform")), Position { line: 4, column: 16 });
        assert_eq!(loc.key(&p("steps[0].transform")), Position { line: 4, column: 5 });
        assert_eq!(loc.value(&p("steps[0].missing")), Position { line: 3, column: 5 });
    }

    #[test]
    fn json_is_accepted() {
        let (v, loc) = parse("{\n  \"name\": \"x\",\n  \"steps\": []\n}").expect("parses");
        assert_eq!(v["name"], "x");
        assert_eq!(loc.key(&p("steps")).line, 3);
    }

    #[test]
    fn duplicate_keys_are_errors_with_position() {
        let err = parse("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(err.position.line, 3);
        assert!(err.message.contains("duplicate key `a`"));
    }

    #[test]
    fn syntax_errors_carry_position() {
        let err = parse("a: [1, 2\nb: 3\n").expect_err("unclosed");
        assert!(err.position.line >= 2, "{err:?}");
    }

    #[test]
    fn anchors_and_aliases_copy_values() {
        let (v, _) = parse("base: &b {x: 1}\ncopy: *b\n").expect("parses");
        assert_eq!(v["copy"], serde_json::json!({"x": 1}));
    }
}
