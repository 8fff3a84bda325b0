//! The model client against a fake provider speaking both wire protocols over real HTTP:
//! whole and streamed answers, tool calls, the request bodies the provider sees, retries and
//! error mapping.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use steward_agent::provider::{
    ErrorKind, Message, ModelClient, ModelReply, ModelRequest, Protocol, ProviderError, ReqwestTransport,
    RetryPolicy, ToolCall, ToolSpec, Usage,
};
use steward_testkit::model::{FakeProvider, Reply, UNSCRIPTED};

const KEY: &str = "sk-test-secret-0123456789";
const BOTH: [Protocol; 2] = [Protocol::Openai, Protocol::Anthropic];

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        retries: 3,
        base: Duration::from_millis(5),
        max: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    }
}

fn client(fake: &FakeProvider, protocol: Protocol) -> ModelClient {
    let (transport, base_url) = match protocol {
        Protocol::Openai => (ReqwestTransport::bearer(KEY).unwrap(), fake.openai_url()),
        Protocol::Anthropic => (ReqwestTransport::api_key(KEY).unwrap(), fake.anthropic_url()),
    };
    ModelClient {
        protocol,
        base_url,
        transport: Arc::new(transport),
        retry: fast_retries(),
        timeout: Duration::from_secs(10),
    }
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "The weather in a city.".into(),
        parameters: json!({
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
        }),
    }
}

fn request(model: &str) -> ModelRequest {
    ModelRequest {
        model: model.into(),
        system: Some("You are terse.".into()),
        messages: vec![Message::user("What is the weather in Oslo?")],
        tools: vec![weather_tool()],
        max_tokens: None,
        temperature: None,
    }
}

/// Calls with streaming, returning the reply and the text deltas in order.
async fn streamed(
    client: &ModelClient,
    req: &ModelRequest,
) -> (Result<ModelReply, ProviderError>, Vec<String>) {
    let mut deltas = Vec::new();
    let mut on_text = |t: &str| deltas.push(t.to_owned());
    let reply = client.complete(req, Some(&mut on_text)).await;
    (reply, deltas)
}

fn expected_path(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Openai => "/v1/chat/completions",
        Protocol::Anthropic => "/v1/messages",
    }
}

#[tokio::test]
async fn text_reply_whole() {
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        fake.enqueue(Reply::text("It is sunny in Oslo.").usage(12, 34));
        let reply = client(&fake, protocol).complete(&request("m-text"), None).await.unwrap();
        assert_eq!(reply.text, "It is sunny in Oslo.", "{protocol:?}");
        assert!(reply.tool_calls.is_empty());
        assert_eq!(reply.usage, Usage { input_tokens: 12, output_tokens: 34 });
        assert_eq!(reply.model, "m-text");
        let stop = if protocol == Protocol::Openai { "stop" } else { "end_turn" };
        assert_eq!(reply.stop_reason.as_deref(), Some(stop));

        let seen = fake.last().unwrap();
        assert_eq!(fake.count(), 1);
        assert_eq!(seen.path, expected_path(protocol));
        assert!(!seen.streamed() && seen.body.get("stream").is_none());
        assert!(!seen.body.to_string().contains(KEY), "the key is a header, never in the body");
        match protocol {
            Protocol::Openai => {
                assert_eq!(seen.headers["authorization"], format!("Bearer {KEY}"));
                assert_eq!(seen.body["messages"][0], json!({"role": "system", "content": "You are terse."}));
                assert_eq!(seen.body["messages"][1]["role"], "user");
                assert!(seen.body.get("max_tokens").is_none() && seen.body.get("system").is_none());
                let tool = &seen.body["tools"][0];
                assert_eq!(tool["type"], "function");
                assert_eq!(tool["function"]["name"], "get_weather");
                assert_eq!(tool["function"]["parameters"], weather_tool().parameters);
            }
            Protocol::Anthropic => {
                assert_eq!(seen.headers["x-api-key"], KEY);
                assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
                assert_eq!(seen.body["system"], "You are terse.");
                assert_eq!(seen.body["max_tokens"], 4096);
                assert_eq!(seen.body["messages"].as_array().unwrap().len(), 1);
                let tool = &seen.body["tools"][0];
                assert_eq!(tool["name"], "get_weather");
                assert_eq!(tool["input_schema"], weather_tool().parameters);
            }
        }
    }
}

#[tokio::test]
async fn text_reply_streamed_arrives_in_deltas() {
    let text = "Sunny, 21 degrees, light wind from the west. Enjoy \u{2600}!";
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        fake.enqueue(Reply::text(text).usage(40, 9));
        let (reply, deltas) = streamed(&client(&fake, protocol), &request("m-stream")).await;
        let reply = reply.unwrap();
        assert!(deltas.len() > 1, "{protocol:?}: one delta per word, got {deltas:?}");
        assert_eq!(deltas.concat(), text);
        assert_eq!(reply.text, text);
        assert_eq!(reply.usage, Usage { input_tokens: 40, output_tokens: 9 }, "{protocol:?}");
        assert_eq!(reply.model, "m-stream");
        let seen = fake.last().unwrap();
        assert!(seen.streamed());
        if protocol == Protocol::Openai {
            assert_eq!(seen.body["stream_options"], json!({"include_usage": true}));
        }
    }
}

#[tokio::test]
async fn streamed_text_is_passed_on_as_it_arrives() {
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        // The server pauses 50ms before each chunk: six words make at least five pauses
        // between the first delta and the last.
        fake.enqueue(Reply::text("one two three four five six").chunk_delay(Duration::from_millis(50)));
        let mut arrivals = Vec::new();
        let mut on_text = |_: &str| arrivals.push(std::time::Instant::now());
        client(&fake, protocol).complete(&request("m"), Some(&mut on_text)).await.unwrap();
        assert_eq!(arrivals.len(), 6, "{protocol:?}");
        let spread = arrivals[5].duration_since(arrivals[0]);
        assert!(spread >= Duration::from_millis(200), "{protocol:?}: deltas came together ({spread:?})");
    }
}

fn complex_args() -> Value {
    json!({
        "city": "S\u{e3}o Paulo", "units": "metric", "days": [1, 2, 3],
        "note": "say \"hi\"\n", "deep": {"a": null},
    })
}

fn two_calls() -> Reply {
    Reply::tool_call("call_1", "get_weather", complex_args())
        .and_call("call_2", "get_time", json!({}))
        .with_text("Checking both.")
        .usage(100, 20)
}

fn assert_two_calls(protocol: Protocol, reply: &ModelReply) {
    assert_eq!(reply.tool_calls.len(), 2, "{protocol:?}");
    assert_eq!(
        reply.tool_calls[0],
        ToolCall { id: "call_1".into(), name: "get_weather".into(), arguments: complex_args() }
    );
    assert_eq!(
        reply.tool_calls[1],
        ToolCall { id: "call_2".into(), name: "get_time".into(), arguments: json!({}) }
    );
    assert_eq!(reply.text, "Checking both.");
    assert_eq!(reply.usage.total(), 120);
    let stop = if protocol == Protocol::Openai { "tool_calls" } else { "tool_use" };
    assert_eq!(reply.stop_reason.as_deref(), Some(stop));
}

#[tokio::test]
async fn tool_calls_whole() {
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        fake.enqueue(two_calls());
        let reply = client(&fake, protocol).complete(&request("m"), None).await.unwrap();
        assert_two_calls(protocol, &reply);
    }
}

#[tokio::test]
async fn tool_calls_streamed_are_reassembled() {
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        fake.enqueue(two_calls());
        let (reply, deltas) = streamed(&client(&fake, protocol), &request("m")).await;
        assert_two_calls(protocol, &reply.unwrap());
        assert_eq!(deltas.concat(), "Checking both.");
    }
}

#[tokio::test]
async fn malformed_arguments_are_kept_as_text() {
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        fake.enqueue(Reply::status(200).and_raw_call("c1", "get_weather", r#"{"city": "Os"#));
        let (reply, _) = streamed(&client(&fake, protocol), &request("m")).await;
        assert_eq!(reply.unwrap().tool_calls[0].arguments, json!(r#"{"city": "Os"#), "{protocol:?}");
    }
}

/// A conversation after two tool calls, one of which failed.
fn follow_up() -> ModelRequest {
    let calls = vec![
        ToolCall { id: "call_1".into(), name: "get_weather".into(), arguments: json!({"city": "Oslo"}) },
        ToolCall { id: "call_2".into(), name: "get_time".into(), arguments: json!({}) },
    ];
    ModelRequest {
        messages: vec![
            Message::user("What is the weather in Oslo?"),
            Message::user("And the time?"),
            Message::assistant("Let me look.", calls),
            Message::tool("call_1", "{\"temp\": 21}", false),
            Message::tool("call_2", "clock unavailable", true),
        ],
        max_tokens: Some(256),
        temperature: Some(0.2),
        ..request("m-conv")
    }
}

#[tokio::test]
async fn openai_conversation_wire_format() {
    let fake = FakeProvider::start().await;
    fake.enqueue(Reply::text("21 degrees; the clock is down."));
    let reply = client(&fake, Protocol::Openai).complete(&follow_up(), None).await.unwrap();
    assert_eq!(reply.text, "21 degrees; the clock is down.");
    let body = fake.last().unwrap().body;
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["temperature"], 0.2);
    let messages = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "user", "assistant", "tool", "tool"]);
    assert_eq!(messages[3]["content"], "Let me look.");
    assert_eq!(
        messages[3]["tool_calls"][0],
        json!({
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
        })
    );
    assert_eq!(messages[3]["tool_calls"][1]["function"]["arguments"], "{}");
    assert_eq!(messages[4], json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}));
    assert_eq!(messages[5]["tool_call_id"], "call_2");
}

#[tokio::test]
async fn anthropic_conversation_merges_turns() {
    let fake = FakeProvider::start().await;
    fake.enqueue(Reply::text("21 degrees."));
    // The fake refuses turns that do not alternate or tool results without a matching call.
    let (reply, _) = streamed(&client(&fake, Protocol::Anthropic), &follow_up()).await;
    assert_eq!(reply.unwrap().text, "21 degrees.");
    let body = fake.last().unwrap().body;
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["stream"], true);
    assert_eq!(body["system"], "You are terse.");
    let expected = json!([
        {"role": "user", "content": [
            {"type": "text", "text": "What is the weather in Oslo?"},
            {"type": "text", "text": "And the time?"},
        ]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "{\"temp\": 21}", "is_error": false},
            {
                "type": "tool_result", "tool_use_id": "call_2",
                "content": "clock unavailable", "is_error": true,
            },
        ]},
    ]);
    assert_eq!(body["messages"], expected);
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after() {
    let fake = FakeProvider::start().await;
    fake.enqueue(Reply::status(429).retry_after(1));
    fake.enqueue(Reply::text("after the wait"));
    let reply = client(&fake, Protocol::Openai).complete(&request("m"), None).await.unwrap();
    assert_eq!(reply.text, "after the wait");
    let seen = fake.requests();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at.duration_since(seen[0].at);
    // Backoff alone would be 5ms; only honouring Retry-After makes this wait.
    assert!(waited >= Duration::from_millis(950), "waited {waited:?}");
}

#[tokio::test]
async fn overloaded_then_success_and_too_long_retry_after_fails_at_once() {
    let fake = FakeProvider::start().await;
    let c = client(&fake, Protocol::Anthropic);
    fake.enqueue(Reply::status(529).retry_after(0));
    fake.enqueue(Reply::text("back"));
    assert_eq!(c.complete(&request("m"), None).await.unwrap().text, "back");
    assert_eq!(fake.count(), 2);

    fake.enqueue(Reply::status(429).retry_after(3600));
    fake.enqueue(Reply::text("never asked for"));
    let e = c.complete(&request("m"), None).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(3600)));
    assert_eq!(fake.count(), 3, "no retry when the provider asks for too long a wait");
    assert_eq!(fake.pending(), 1);
}

#[tokio::test]
async fn server_errors_are_retried() {
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        fake.enqueue(Reply::status(500));
        fake.enqueue(Reply::status(503));
        fake.enqueue(Reply::text("third time lucky"));
        let (reply, deltas) = streamed(&client(&fake, protocol), &request("m")).await;
        assert_eq!(reply.unwrap().text, "third time lucky", "{protocol:?}");
        assert_eq!(deltas.concat(), "third time lucky", "failed attempts pass no text on");
        assert_eq!(fake.count(), 3);
    }
}

#[tokio::test]
async fn server_errors_until_retries_run_out() {
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        for _ in 0..10 {
            fake.enqueue(Reply::status(500));
        }
        let e = client(&fake, protocol).complete(&request("m"), None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Server, "{protocol:?}");
        assert_eq!(e.status, Some(500));
        assert!(e.message.contains("gave up after 4 attempts"), "{}", e.message);
        assert_eq!(fake.count(), 4, "one call and three retries");
    }
}

#[tokio::test]
async fn refused_key_is_an_auth_error() {
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        let provider_says = match protocol {
            Protocol::Openai => "Incorrect API key provided.",
            Protocol::Anthropic => "invalid x-api-key",
        };
        fake.enqueue(Reply::status(401).message(provider_says));
        let c = client(&fake, protocol);
        let e = c.complete(&request("m"), None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth, "{protocol:?}");
        assert_eq!(e.status, Some(401));
        assert!(e.message.contains(provider_says), "{}", e.message);
        assert!(
            e.message.contains(&c.base_url) && e.message.contains("refused the API key"),
            "{}",
            e.message
        );
        assert!(!e.message.contains(KEY), "headers never appear in errors");
        assert_eq!(fake.count(), 1, "not retried");
    }
}

#[tokio::test]
async fn unknown_model_and_bad_request() {
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        fake.enqueue(Reply::unknown_model());
        let c = client(&fake, protocol);
        let e = c.complete(&request("gpt-nonexistent"), None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnknownModel, "{protocol:?}: {}", e.message);
        assert!(e.message.contains("gpt-nonexistent"), "{}", e.message);
        assert!(e.kind.falls_back());

        fake.enqueue(Reply::status(400).message("messages: too many"));
        let e = c.complete(&request("m"), None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        assert!(e.message.contains("messages: too many"), "{}", e.message);
        assert_eq!(fake.count(), 2, "neither is retried");
    }
}

#[tokio::test]
async fn per_model_script_serves_a_fallback() {
    let fake = FakeProvider::start().await;
    fake.enqueue_for("model-a", Reply::status(503));
    fake.enqueue_for("model-a", Reply::status(503));
    fake.enqueue_for("model-b", Reply::text("from b"));
    fake.enqueue(Reply::text("shared"));
    let mut c = client(&fake, Protocol::Openai);
    c.retry.retries = 1;
    let e = c.complete(&request("model-a"), None).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Server);
    assert_eq!(c.complete(&request("model-b"), None).await.unwrap().text, "from b");
    assert_eq!(c.complete(&request("model-b"), None).await.unwrap().text, "shared");
    assert_eq!(c.complete(&request("model-b"), None).await.unwrap().text, UNSCRIPTED);
    let models: Vec<String> = fake.requests().iter().map(|r| r.model().to_owned()).collect();
    assert_eq!(models, ["model-a", "model-a", "model-b", "model-b", "model-b"]);
}

#[tokio::test]
async fn slow_answers_time_out() {
    for protocol in BOTH {
        let fake = FakeProvider::start().await;
        fake.enqueue(Reply::text("late").delay(Duration::from_secs(5)));
        fake.enqueue(Reply::text("a slow stream of words").chunk_delay(Duration::from_secs(5)));
        let mut c = client(&fake, protocol);
        c.timeout = Duration::from_millis(300);
        let e = c.complete(&request("m"), None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout, "{protocol:?}: {}", e.message);
        let (reply, _) = streamed(&c, &request("m")).await;
        assert_eq!(reply.unwrap_err().kind, ErrorKind::Timeout);
        assert_eq!(fake.count(), 2, "timeouts are not retried");
    }
}

#[tokio::test]
async fn unreachable_provider_is_a_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = ModelClient {
        protocol: Protocol::Openai,
        base_url: format!("http://{addr}/v1"),
        transport: Arc::new(ReqwestTransport::bearer(KEY).unwrap()),
        retry: fast_retries(),
        timeout: Duration::from_secs(5),
    };
    let e = c.complete(&request("m"), None).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Network, "{}", e.message);
    assert!(e.message.contains(&addr.to_string()) && !e.message.contains(KEY), "{}", e.message);
}
