//! The Anthropic messages API: building the request body and reading the answer, whole or
//! streamed.
//!
//! Anthropic wants user and assistant turns to alternate and tool results sent back as
//! `tool_result` blocks of a user turn, so consecutive messages of the same side are merged
//! into one turn, with its tool results first. A tool call whose arguments were kept as a raw
//! (malformed) string is sent back with `input: {}`, since `input` must be an object.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::errors;
use super::sse::SseEvent;
use super::{ErrorKind, Message, ModelReply, ModelRequest, ProviderError, Role, ToolCall, Usage};

/// The API version this module speaks.
pub const VERSION: &str = "2023-06-01";

/// Output tokens asked for when the request sets none (Anthropic requires a number).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// `{base_url}/v1/messages`.
pub fn url(base_url: &str) -> String {
    format!("{}/v1/messages", base_url.trim_end_matches('/'))
}

/// The headers every request carries (the key is the transport's business).
pub fn headers() -> Vec<(String, String)> {
    vec![("anthropic-version".to_owned(), VERSION.to_owned())]
}

/// The request body.
pub fn request_body(req: &ModelRequest, stream: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("max_tokens".into(), json!(req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    if let Some(system) = req.system.as_deref().filter(|s| !s.is_empty()) {
        body.insert("system".into(), json!(system));
    }
    body.insert("messages".into(), messages(&req.messages));
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}));
        body.insert("tools".into(), tools.collect());
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Value::Object(body)
}

/// The conversation as alternating turns of content blocks.
fn messages(messages: &[Message]) -> Value {
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for m in messages {
        let mut blocks = Vec::new();
        let role = match m.role {
            Role::User => {
                blocks.extend(text_block(&m.content));
                "user"
            }
            Role::Assistant => {
                blocks.extend(text_block(&m.content));
                blocks.extend(m.tool_calls.iter().map(|c| {
                    let input = if c.arguments.is_object() { c.arguments.clone() } else { json!({}) };
                    json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input})
                }));
                "assistant"
            }
            Role::Tool => {
                blocks.push(json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.as_deref().unwrap_or_default(),
                    "content": m.content,
                    "is_error": m.is_error,
                }));
                "user"
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let turns = turns.into_iter().map(|(role, mut blocks)| {
        // Tool results lead their turn; the sort is stable, so each group keeps its order.
        blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
        json!({"role": role, "content": blocks})
    });
    Value::Array(turns.collect())
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::BadResponse, message)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn tokens(usage: Option<&Value>, key: &str) -> Option<u64> {
    usage.and_then(|u| u.get(key)).and_then(Value::as_u64)
}

/// Reads a whole (not streamed) answer.
pub fn parse_response(body: &Value, requested_model: &str) -> Result<ModelReply, ProviderError> {
    if body.get("type").and_then(Value::as_str) == Some("error") {
        return Err(errors::in_stream(body));
    }
    let content =
        body.get("content").and_then(Value::as_array).ok_or_else(|| bad("the answer has no `content`"))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in content {
        match str_of(block, "type") {
            "text" => text.push_str(str_of(block, "text")),
            "tool_use" => tool_calls.push(ToolCall {
                id: str_of(block, "id").to_owned(),
                name: str_of(block, "name").to_owned(),
                arguments: block.get("input").filter(|i| i.is_object()).cloned().unwrap_or_else(|| json!({})),
            }),
            _ => {}
        }
    }
    let usage = body.get("usage");
    Ok(ModelReply {
        text,
        tool_calls,
        usage: Usage {
            input_tokens: tokens(usage, "input_tokens").unwrap_or(0),
            output_tokens: tokens(usage, "output_tokens").unwrap_or(0),
        },
        stop_reason: body.get("stop_reason").and_then(Value::as_str).map(str::to_owned),
        model: body.get("model").and_then(Value::as_str).unwrap_or(requested_model).to_owned(),
    })
}

#[derive(Debug)]
enum Block {
    Text,
    Tool { id: String, name: String, json: String, initial: Value },
    Other,
}

/// A streamed answer being put together, event by event.
#[derive(Debug, Default)]
pub struct Stream {
    text: String,
    blocks: BTreeMap<u64, Block>,
    usage: Usage,
    stop_reason: Option<String>,
    model: Option<String>,
    started: bool,
    done: bool,
}

impl Stream {
    /// Reads one event, passing text deltas to `on_text`. True after `message_stop`.
    pub fn event(&mut self, ev: &SseEvent, on_text: &mut dyn FnMut(&str)) -> Result<bool, ProviderError> {
        if ev.data.trim().is_empty() {
            return Ok(false);
        }
        let data: Value =
            serde_json::from_str(&ev.data).map_err(|e| bad(format!("a stream event is not JSON: {e}")))?;
        let kind = data.get("type").and_then(Value::as_str).or(ev.event.as_deref()).unwrap_or_default();
        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                self.started = true;
                let message = data.get("message");
                if let Some(m) = message.and_then(|m| m.get("model")).and_then(Value::as_str) {
                    self.model = Some(m.to_owned());
                }
                let usage = message.and_then(|m| m.get("usage"));
                self.usage.input_tokens = tokens(usage, "input_tokens").unwrap_or(0);
                self.usage.output_tokens = tokens(usage, "output_tokens").unwrap_or(0);
            }
            "content_block_start" => {
                let block = data.get("content_block").cloned().unwrap_or_default();
                let entry = match str_of(&block, "type") {
                    "text" => {
                        self.text_delta(str_of(&block, "text"), on_text);
                        Block::Text
                    }
                    "tool_use" => Block::Tool {
                        id: str_of(&block, "id").to_owned(),
                        name: str_of(&block, "name").to_owned(),
                        json: String::new(),
                        initial: block.get("input").cloned().unwrap_or_default(),
                    },
                    _ => Block::Other,
                };
                self.blocks.insert(index, entry);
            }
            "content_block_delta" => {
                let delta = data.get("delta").cloned().unwrap_or_default();
                match str_of(&delta, "type") {
                    "text_delta" => self.text_delta(str_of(&delta, "text"), on_text),
                    "input_json_delta" => match self.blocks.get_mut(&index) {
                        Some(Block::Tool { json, .. }) => json.push_str(str_of(&delta, "partial_json")),
                        _ => {
                            return Err(bad(format!(
                                "input_json_delta for block {index}, which is no tool_use"
                            )));
                        }
                    },
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) =
                    data.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str)
                {
                    self.stop_reason = Some(reason.to_owned());
                }
                let usage = data.get("usage");
                if let Some(n) = tokens(usage, "output_tokens") {
                    self.usage.output_tokens = n;
                }
                if let Some(n) = tokens(usage, "input_tokens") {
                    self.usage.input_tokens = n;
                }
            }
            "message_stop" => {
                self.done = true;
                return Ok(true);
            }
            "error" => return Err(errors::in_stream(&data)),
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        Ok(false)
    }

    fn text_delta(&mut self, text: &str, on_text: &mut dyn FnMut(&str)) {
        if !text.is_empty() {
            self.text.push_str(text);
            on_text(text);
        }
    }

    /// The reply, once the stream has ended.
    pub fn finish(self, requested_model: &str) -> Result<ModelReply, ProviderError> {
        if !self.started {
            return Err(bad("the stream ended without a message_start event"));
        }
        if !self.done {
            return Err(ProviderError::new(ErrorKind::Network, "the stream ended before message_stop"));
        }
        let mut tool_calls = Vec::new();
        for block in self.blocks.into_values() {
            let Block::Tool { id, name, json, initial } = block else { continue };
            let arguments = if json.trim().is_empty() {
                if initial.is_object() { initial } else { json!({}) }
            } else {
                serde_json::from_str::<Value>(&json).unwrap_or(Value::String(json))
            };
            tool_calls.push(ToolCall { id, name, arguments });
        }
        Ok(ModelReply {
            text: self.text,
            tool_calls,
            usage: self.usage,
            stop_reason: self.stop_reason,
            model: self.model.unwrap_or_else(|| requested_model.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_alternate_with_tool_results_first() {
        let call = ToolCall { id: "t1".into(), name: "f".into(), arguments: json!("not json") };
        let msgs = [
            Message::user("a"),
            Message::user("b"),
            Message::assistant("", vec![call]),
            Message::user("aside"),
            Message::tool("t1", "out", true),
        ];
        let v = messages(&msgs);
        assert_eq!(v.as_array().map(Vec::len), Some(3));
        assert_eq!(v[0]["content"].as_array().map(Vec::len), Some(2));
        assert_eq!(v[1]["content"][0], json!({"type": "tool_use", "id": "t1", "name": "f", "input": {}}));
        assert_eq!(v[2]["role"], "user");
        assert_eq!(v[2]["content"][0]["type"], "tool_result");
        assert_eq!(v[2]["content"][0]["is_error"], true);
        assert_eq!(v[2]["content"][1], json!({"type": "text", "text": "aside"}));
    }

    #[test]
    fn stream_error_event_maps_its_type() {
        let mut s = Stream::default();
        let ev = SseEvent {
            event: Some("error".into()),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(),
            id: None,
        };
        let e = s.event(&ev, &mut |_: &str| {}).expect_err("an error event");
        assert_eq!(e.kind, ErrorKind::Server);
        assert!(e.message.contains("Overloaded"));
    }
}
