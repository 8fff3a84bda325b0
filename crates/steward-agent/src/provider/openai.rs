//! The OpenAI chat-completions protocol (also spoken by OpenRouter, Groq, Ollama, vLLM and
//! llama.cpp): building the request body and reading the answer, whole or streamed.
//!
//! Tool-call arguments arrive as a JSON string. An empty string becomes `{}`; a string that is
//! not valid JSON is kept as a JSON string value holding the raw text, so that the caller can
//! tell the model its arguments were malformed instead of failing the whole turn.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::errors;
use super::sse::SseEvent;
use super::{ErrorKind, Message, ModelReply, ModelRequest, ProviderError, Role, ToolCall, Usage};

/// `{base_url}/chat/completions`.
pub fn url(base_url: &str) -> String {
    format!("{}/chat/completions", base_url.trim_end_matches('/'))
}

/// The request body; `stream` asks for server-sent events with a final usage chunk.
pub fn request_body(req: &ModelRequest, stream: bool) -> Value {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = req.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.extend(req.messages.iter().map(message));
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools = req.tools.iter().map(|t| {
            json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters,
            }})
        });
        body.insert("tools".into(), tools.collect());
    }
    if let Some(max) = req.max_tokens {
        body.insert("max_tokens".into(), json!(max));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

fn message(m: &Message) -> Value {
    match m.role {
        Role::User => json!({"role": "user", "content": m.content}),
        Role::Assistant if m.tool_calls.is_empty() => json!({"role": "assistant", "content": m.content}),
        Role::Assistant => {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function", "function": {
                        "name": c.name, "arguments": arguments_string(&c.arguments),
                    }})
                })
                .collect();
            let content = if m.content.is_empty() { Value::Null } else { json!(m.content) };
            json!({"role": "assistant", "content": content, "tool_calls": calls})
        }
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id.as_deref().unwrap_or_default(),
            "content": m.content,
        }),
    }
}

/// Arguments as the wire's JSON string: a kept raw string is sent back as it came.
fn arguments_string(args: &Value) -> String {
    match args {
        Value::String(raw) => raw.clone(),
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

/// Arguments from the wire's JSON string (see the module notes).
pub fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Null) => json!({}),
        Ok(v) => v,
        Err(_) => Value::String(raw.to_owned()),
    }
}

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::BadResponse, message)
}

/// Reads a whole (not streamed) answer.
pub fn parse_response(body: &Value, requested_model: &str) -> Result<ModelReply, ProviderError> {
    let Some(choice) = body.get("choices").and_then(|c| c.get(0)) else {
        if body.get("error").is_some() {
            return Err(errors::in_stream(body));
        }
        return Err(bad("the answer has no `choices`"));
    };
    let message = choice.get("message").ok_or_else(|| bad("the answer's choice has no `message`"))?;
    let mut tool_calls = Vec::new();
    for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let function = call.get("function").ok_or_else(|| bad("a tool call has no `function`"))?;
        tool_calls.push(ToolCall {
            id: str_of(call, "id").to_owned(),
            name: str_of(function, "name").to_owned(),
            arguments: parse_arguments(str_of(function, "arguments")),
        });
    }
    Ok(ModelReply {
        text: str_of(message, "content").to_owned(),
        tool_calls,
        usage: usage(body.get("usage")),
        stop_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned),
        model: body.get("model").and_then(Value::as_str).unwrap_or(requested_model).to_owned(),
    })
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn usage(v: Option<&Value>) -> Usage {
    let n = |key: &str| v.and_then(|u| u.get(key)).and_then(Value::as_u64).unwrap_or(0);
    Usage { input_tokens: n("prompt_tokens"), output_tokens: n("completion_tokens") }
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// A streamed answer being put together, chunk by chunk.
#[derive(Debug, Default)]
pub struct Stream {
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    usage: Option<Usage>,
    stop_reason: Option<String>,
    model: Option<String>,
    chunks: usize,
    done: bool,
}

impl Stream {
    /// Reads one event, passing text deltas to `on_text`. True once the stream says it is done.
    pub fn event(&mut self, ev: &SseEvent, on_text: &mut dyn FnMut(&str)) -> Result<bool, ProviderError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Value =
            serde_json::from_str(data).map_err(|e| bad(format!("a stream chunk is not JSON: {e}")))?;
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Err(errors::in_stream(&chunk));
        }
        self.chunks += 1;
        if let Some(m) = chunk.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()) {
            self.model = Some(m.to_owned());
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage(Some(u)));
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return Ok(false);
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop_reason = Some(reason.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return Ok(false);
        };
        if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            self.text.push_str(text);
            on_text(text);
        }
        let fragments = delta.get("tool_calls").and_then(Value::as_array);
        for (position, fragment) in fragments.into_iter().flatten().enumerate() {
            let index = fragment.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
            let call = self.calls.entry(index).or_default();
            if let Some(id) = fragment.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                call.id = id.to_owned();
            }
            let function = fragment.get("function");
            if let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str)
                && call.name.is_empty()
            {
                call.name = name.to_owned();
            }
            if let Some(args) = function.and_then(|f| f.get("arguments")).and_then(Value::as_str) {
                call.arguments.push_str(args);
            }
        }
        Ok(false)
    }

    /// The reply, once the stream has ended.
    pub fn finish(self, requested_model: &str) -> Result<ModelReply, ProviderError> {
        if self.chunks == 0 {
            return Err(bad("the stream ended without any answer"));
        }
        if !self.done && self.stop_reason.is_none() {
            return Err(ProviderError::new(
                ErrorKind::Network,
                "the stream ended before the answer was complete",
            ));
        }
        let tool_calls = self
            .calls
            .into_values()
            .map(|c| ToolCall { id: c.id, name: c.name, arguments: parse_arguments(&c.arguments) })
            .collect();
        Ok(ModelReply {
            text: self.text,
            tool_calls,
            usage: self.usage.unwrap_or_default(),
            stop_reason: self.stop_reason,
            model: self.model.unwrap_or_else(|| requested_model.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        assert_eq!(parse_arguments(""), json!({}));
        assert_eq!(parse_arguments(" null "), json!({}));
        assert_eq!(parse_arguments(r#"{"a":1}"#), json!({"a": 1}));
        let raw = parse_arguments(r#"{"a":"#);
        assert_eq!(raw, json!(r#"{"a":"#));
        assert_eq!(arguments_string(&raw), r#"{"a":"#, "a malformed string goes back unchanged");
        assert_eq!(arguments_string(&json!({"b": [1]})), r#"{"b":[1]}"#);
    }

    #[test]
    fn stream_accumulates_fragments_by_index() {
        let mut s = Stream::default();
        let mut seen = Vec::new();
        let chunks = [
            r#"{"model":"m-1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","type":"function","function":{"name":"two","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"one","arguments":"{\"x\""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
            "[DONE]",
        ];
        let mut done = false;
        for c in chunks {
            let ev = SseEvent { data: c.to_owned(), ..SseEvent::default() };
            done = s.event(&ev, &mut |t: &str| seen.push(t.to_owned())).expect("chunk");
        }
        assert!(done);
        let reply = s.finish("asked").expect("reply");
        assert_eq!(seen, ["Hi"]);
        assert_eq!(reply.model, "m-1");
        assert_eq!(reply.usage, Usage { input_tokens: 7, output_tokens: 3 });
        let calls: Vec<_> = reply.tool_calls.iter().map(|c| (c.id.as_str(), c.name.as_str())).collect();
        assert_eq!(calls, [("a", "one"), ("b", "two")]);
        assert_eq!(reply.tool_calls[0].arguments, json!({"x": 1}));
        assert_eq!(reply.tool_calls[1].arguments, json!({}));
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let mut s = Stream::default();
        let ev =
            SseEvent { data: r#"{"choices":[{"delta":{"content":"par"}}]}"#.into(), ..SseEvent::default() };
        s.event(&ev, &mut |_: &str| {}).expect("chunk");
        assert_eq!(s.finish("m").map_err(|e| e.kind), Err(ErrorKind::Network));
    }
}
