//! The fake provider's wire formats: its checks of a request, its error bodies, and its
//! answers in both protocols, whole and as server-sent events.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Reply, Wire};

/// What a real provider would refuse the request for.
pub(super) fn check(wire: Wire, headers: &HeaderMap, body: &Value) -> Option<String> {
    let messages = body["messages"].as_array();
    if body["model"].as_str().is_none_or(str::is_empty) || messages.is_none() {
        return Some("the body needs `model` and `messages`".into());
    }
    let messages = messages.map(Vec::as_slice).unwrap_or_default();
    let mut open_calls: Vec<String> = Vec::new();
    match wire {
        Wire::Openai => {
            for m in messages {
                match m["role"].as_str() {
                    Some("assistant") => {
                        let calls = m["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default();
                        open_calls =
                            calls.iter().filter_map(|c| c["id"].as_str().map(str::to_owned)).collect();
                    }
                    Some("tool") => {
                        let id = m["tool_call_id"].as_str().unwrap_or_default();
                        if !open_calls.iter().any(|c| c == id) {
                            return Some(format!("tool message answers no tool call with id `{id}`"));
                        }
                    }
                    Some("system" | "user") => open_calls.clear(),
                    other => return Some(format!("unknown role {other:?}")),
                }
            }
        }
        Wire::Anthropic => {
            if !headers.contains_key("anthropic-version") {
                return Some("anthropic-version: header is required".into());
            }
            if !body["max_tokens"].is_u64() {
                return Some("max_tokens: Field required".into());
            }
            for (i, m) in messages.iter().enumerate() {
                let expected = if i % 2 == 0 { "user" } else { "assistant" };
                if m["role"] != expected {
                    return Some(format!("messages.{i}: roles must alternate, starting with `user`"));
                }
                let blocks = m["content"].as_array().map(Vec::as_slice).unwrap_or_default();
                for b in blocks {
                    let id = b["tool_use_id"].as_str().unwrap_or_default();
                    if b["type"] == "tool_result" && !open_calls.iter().any(|c| c == id) {
                        return Some(format!("messages.{i}: tool_result for unknown tool_use id `{id}`"));
                    }
                }
                open_calls = blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_use")
                    .filter_map(|b| b["id"].as_str())
                    .map(str::to_owned)
                    .collect();
            }
        }
    }
    None
}

pub(super) fn error(wire: Wire, reply: &Reply, model: &str) -> Response {
    let status = reply.status;
    let (openai_type, openai_code, anthropic_type, default) = match status {
        401 => (
            "invalid_request_error",
            json!("invalid_api_key"),
            "authentication_error",
            "Incorrect API key provided.",
        ),
        403 => (
            "invalid_request_error",
            Value::Null,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => ("invalid_request_error", json!("model_not_found"), "not_found_error", "Not found."),
        413 => (
            "invalid_request_error",
            Value::Null,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
        429 => (
            "requests",
            json!("rate_limit_exceeded"),
            "rate_limit_error",
            "Rate limit reached for requests. Please try again later.",
        ),
        529 => ("server_error", Value::Null, "overloaded_error", "Overloaded"),
        500..=599 => (
            "server_error",
            Value::Null,
            "api_error",
            "The server had an error while processing your request.",
        ),
        _ => ("invalid_request_error", Value::Null, "invalid_request_error", "Invalid request."),
    };
    let message = match (&reply.message, reply.unknown_model, wire) {
        (Some(m), _, _) => m.clone(),
        (None, true, Wire::Openai) => {
            format!("The model `{model}` does not exist or you do not have access to it.")
        }
        (None, true, Wire::Anthropic) => format!("model: {model}"),
        (None, false, _) => default.to_owned(),
    };
    let body = match wire {
        Wire::Openai => {
            json!({"error": {"message": message, "type": openai_type, "param": null, "code": openai_code}})
        }
        Wire::Anthropic => json!({"type": "error", "error": {"type": anthropic_type, "message": message}}),
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (code, axum::Json(body)).into_response();
    if let Some(secs) = reply.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// `text` in pieces of a word or so, at least two when it has two characters.
fn pieces(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    if out.len() == 1 && text.chars().count() > 1 {
        out = split_in(text, 2);
    }
    out
}

/// `text` in `n` pieces of about equal length (fewer when it is shorter).
fn split_in(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

pub(super) mod openai {
    use super::{Value, json, pieces, split_in};
    use crate::model::Reply;

    fn usage((input, output): (u64, u64)) -> Value {
        json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output})
    }

    fn finish(reply: &Reply) -> &'static str {
        if reply.calls.is_empty() { "stop" } else { "tool_calls" }
    }

    pub(in crate::model) fn whole(model: &str, reply: &Reply, used: (u64, u64)) -> Value {
        let mut message = json!({"role": "assistant", "content": reply.text, "refusal": null});
        if !reply.calls.is_empty() {
            if reply.text.is_empty() {
                message["content"] = Value::Null;
            }
            message["tool_calls"] = reply
                .calls
                .iter()
                .map(|(id, name, args)| {
                    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
                })
                .collect();
        }
        json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish(reply)}],
            "usage": usage(used),
        })
    }

    pub(in crate::model) fn events(
        model: &str,
        reply: &Reply,
        used: (u64, u64),
        include_usage: bool,
    ) -> Vec<String> {
        let data = |choices: Value, usage: Value| {
            let mut c = json!({
                "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": model, "choices": choices,
            });
            if !usage.is_null() {
                c["usage"] = usage;
            }
            format!("data: {c}\n\n")
        };
        let chunk = |delta: Value, finish: Value| {
            let choice = json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish});
            data(json!([choice]), Value::Null)
        };
        let mut out = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
        out.extend(pieces(&reply.text).into_iter().map(|p| chunk(json!({"content": p}), Value::Null)));
        for (i, (id, name, args)) in reply.calls.iter().enumerate() {
            let function = json!({"name": name, "arguments": ""});
            let first = json!({"index": i, "id": id, "type": "function", "function": function});
            out.push(chunk(json!({"tool_calls": [first]}), Value::Null));
            for part in split_in(args, 3) {
                out.push(chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}),
                    Value::Null,
                ));
            }
        }
        out.push(chunk(json!({}), json!(finish(reply))));
        if include_usage {
            out.push(data(json!([]), usage(used)));
        }
        out.push("data: [DONE]\n\n".into());
        out
    }
}

pub(super) mod anthropic {
    use super::{Value, json, pieces, split_in};
    use crate::model::Reply;

    fn stop(reply: &Reply) -> &'static str {
        if reply.calls.is_empty() { "end_turn" } else { "tool_use" }
    }

    pub(in crate::model) fn whole(model: &str, reply: &Reply, (input, output): (u64, u64)) -> Value {
        let mut content: Vec<Value> = Vec::new();
        if !reply.text.is_empty() {
            content.push(json!({"type": "text", "text": reply.text}));
        }
        for (id, name, args) in &reply.calls {
            let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
            content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
        json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop(reply), "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output},
        })
    }

    pub(in crate::model) fn events(model: &str, reply: &Reply, (input, output): (u64, u64)) -> Vec<String> {
        let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
        let start = json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1},
        });
        let mut out = vec![event("message_start", json!({"type": "message_start", "message": start}))];
        let mut index = 0;
        let mut block = |out: &mut Vec<String>, first: Value, deltas: Vec<Value>| {
            out.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": first}),
            ));
            if index == 0 {
                out.push(event("ping", json!({"type": "ping"})));
            }
            for delta in deltas {
                out.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": delta}),
                ));
            }
            out.push(event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
            index += 1;
        };
        if !reply.text.is_empty() {
            let deltas =
                pieces(&reply.text).into_iter().map(|p| json!({"type": "text_delta", "text": p})).collect();
            block(&mut out, json!({"type": "text", "text": ""}), deltas);
        }
        for (id, name, args) in &reply.calls {
            let mut parts = vec![String::new()];
            parts.extend(split_in(args, 3));
            let deltas =
                parts.into_iter().map(|p| json!({"type": "input_json_delta", "partial_json": p})).collect();
            block(&mut out, json!({"type": "tool_use", "id": id, "name": name, "input": {}}), deltas);
        }
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop(reply), "stop_sequence": null},
            "usage": {"output_tokens": output},
        });
        out.push(event("message_delta", delta));
        out.push(event("message_stop", json!({"type": "message_stop"})));
        out
    }
}
