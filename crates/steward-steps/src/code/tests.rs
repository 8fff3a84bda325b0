//! Tests of the sandbox: results, errors, limits that cannot be escaped, and no I/O.

#![expect(clippy::unwrap_used)]
use super::*;
use serde_json::json;

fn limits() -> SandboxLimits {
    SandboxLimits { cpu_time: Duration::from_millis(200), ..SandboxLimits::default() }
}

fn run_ok(source: &str, input: serde_json::Value) -> serde_json::Value {
    run(source, &input, &limits()).unwrap()
}

fn run_err(source: &str) -> CodeError {
    run(source, &json!({}), &limits()).unwrap_err()
}

fn thrown_text(source: &str) -> String {
    match run_err(source) {
        CodeError::Thrown(text) => text,
        other => panic!("expected Thrown, got {other:?}"),
    }
}

#[test]
fn computes_result_from_input() {
    let source = r#"export default ({ steps, inputs }) =>
        ({ tier: inputs.total > 100 ? "vip" : "std", name: steps.lookup.output.body.name })"#;
    let input = json!({
        "steps": { "lookup": { "output": { "body": { "name": "Ada" } } } },
        "inputs": { "total": 150 }
    });
    assert_eq!(run_ok(source, input), json!({ "tier": "vip", "name": "Ada" }));
}

#[test]
fn async_function_result_is_awaited() {
    let source = r#"export default async ({ n }) => {
        const doubled = await Promise.resolve(n * 2);
        await null;
        return [doubled, doubled + 1];
    }"#;
    assert_eq!(run_ok(source, json!({ "n": 21 })), json!([42, 43]));
}

#[test]
fn top_level_await_works() {
    let source = "const base = await Promise.resolve(40); export default () => base + 2;";
    assert_eq!(run_ok(source, json!(null)), json!(42));
}

#[test]
fn thrown_error_message_is_surfaced() {
    let text = thrown_text(r#"export default () => { throw new TypeError("bad input: x"); }"#);
    assert!(text.contains("TypeError: bad input: x"), "{text}");
    assert!(text.contains(MODULE_NAME), "stack expected in {text}");
}

#[test]
fn thrown_non_error_value_is_surfaced() {
    let text = thrown_text(r#"export default () => { throw "plain string"; }"#);
    assert_eq!(text, "plain string");
    assert_eq!(thrown_text("export default () => { throw undefined; }"), "undefined");
}

#[test]
fn thrown_null_counts_as_out_of_memory() {
    // Indistinguishable from QuickJS's own out-of-memory signal; documented behaviour.
    let err = run_err("export default () => { throw null; }");
    assert!(matches!(err, CodeError::MemoryLimit { .. }), "{err:?}");
}

#[test]
fn memory_limit_many_small_allocations() {
    let small = SandboxLimits {
        memory_bytes: 8 * 1024 * 1024,
        cpu_time: Duration::from_secs(10),
        ..SandboxLimits::default()
    };
    for growth in [
        "const a = []; for (let i = 0; ; i++) a.push({ i });",
        "let list = null; for (let i = 0; ; i++) list = { i, list };",
        "let s = ''; for (let i = 0; ; i++) s += String(i);",
        "const m = new Map(); for (let i = 0; ; i++) m.set(i, [i]);",
    ] {
        let source = format!("export default () => {{ {growth} }}");
        let err = run(&source, &json!({}), &small).unwrap_err();
        assert!(matches!(err, CodeError::MemoryLimit { .. }), "{growth}: {err:?}");
    }
}

#[test]
fn tiny_memory_limits_never_escape_as_other_errors() {
    let source = r#"const pad = "y".repeat(1000);
        export default async (x) => {
            await null;
            return { n: x.items.map((i) => i * 2 + pad.length), s: JSON.stringify(x) };
        }"#;
    let input = json!({ "items": (0..2000).collect::<Vec<_>>() });
    for kib in (0..1500).step_by(11) {
        let tiny = SandboxLimits { memory_bytes: kib * 1024, ..SandboxLimits::default() };
        match run(source, &input, &tiny) {
            Ok(_) | Err(CodeError::MemoryLimit { .. }) => {}
            Err(other) => panic!("{kib} KiB: unexpected {other:?}"),
        }
    }
}

#[test]
fn rejected_promise_is_thrown() {
    let text = thrown_text(r#"export default async () => { throw new Error("nope"); }"#);
    assert!(text.contains("Error: nope"), "{text}");
}

#[test]
fn never_settling_promise_is_thrown() {
    let text = thrown_text("export default () => new Promise(() => {})");
    assert!(text.contains("never settled"), "{text}");
}

#[test]
fn failing_microtask_is_reported_when_promise_never_settles() {
    let source = r#"export default () => new Promise(() => {
        queueMicrotask(() => { throw new RangeError("from a microtask"); });
    })"#;
    let text = thrown_text(source);
    assert!(text.contains("RangeError: from a microtask"), "{text}");
}

#[test]
fn memory_limit_inside_promise_jobs() {
    let small = SandboxLimits { memory_bytes: 4 * 1024 * 1024, ..SandboxLimits::default() };
    let source = r#"export default async () => {
        const kept = [];
        for (let i = 0; ; i++) kept.push(await Promise.resolve({ i }));
    }"#;
    let err = run(source, &json!({}), &small).unwrap_err();
    assert!(matches!(err, CodeError::MemoryLimit { .. }), "{err:?}");
}

#[test]
fn syntax_error_is_reported() {
    let err = run_err("export default () => {");
    assert!(matches!(err, CodeError::Syntax(_)), "{err:?}");
    let err = check("export default (", &limits()).unwrap_err();
    assert!(matches!(err, CodeError::Syntax(_)), "{err:?}");
}

#[test]
fn missing_default_export_is_reported() {
    let err = run_err("export const f = () => 1;");
    assert!(matches!(err, CodeError::NoDefaultExport), "{err:?}");
    let err = check("export default 42;", &limits()).unwrap_err();
    assert!(matches!(err, CodeError::NoDefaultExport), "{err:?}");
}

#[test]
fn check_accepts_valid_module_without_calling_it() {
    let source = "export default () => { while (true) {} }";
    check(source, &limits()).unwrap();
}

#[test]
fn memory_limit_growing_array() {
    let small = SandboxLimits {
        memory_bytes: 16 * 1024 * 1024,
        cpu_time: Duration::from_secs(10),
        ..SandboxLimits::default()
    };
    let source = r#"export default () => {
        const parts = [];
        for (let i = 0; ; i++) parts.push("x".repeat(1024) + i);
    }"#;
    let err = run(source, &json!({}), &small).unwrap_err();
    assert!(
        matches!(err, CodeError::MemoryLimit { limit_bytes } if limit_bytes == 16 * 1024 * 1024),
        "{err:?}"
    );
}

#[test]
fn memory_limit_single_huge_allocation() {
    let source = "export default () => new ArrayBuffer(512 * 1024 * 1024).byteLength";
    let err = run_err(source);
    assert!(matches!(err, CodeError::MemoryLimit { .. }), "{err:?}");
}

#[test]
fn cpu_limit_stops_infinite_loop() {
    let started = Instant::now();
    let err = run_err("export default () => { while (true) {} }");
    assert!(matches!(err, CodeError::CpuLimit { limit_ms: 200 }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn cpu_limit_cannot_be_swallowed_by_try_catch() {
    let started = Instant::now();
    let source = "export default () => { while (true) { try { for (;;) {} } catch (e) {} } }";
    let err = run_err(source);
    assert!(matches!(err, CodeError::CpuLimit { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn cpu_limit_cannot_be_swallowed_by_promise_catch() {
    let source = r#"export default async () => {
        for (;;) { try { await (async () => { for (;;) {} })(); } catch (e) {} }
    }"#;
    let err = run_err(source);
    assert!(matches!(err, CodeError::CpuLimit { .. }), "{err:?}");
}

#[test]
fn cpu_limit_covers_endless_microtasks() {
    let source = "export default async () => { for (;;) await null; }";
    let err = run_err(source);
    assert!(matches!(err, CodeError::CpuLimit { .. }), "{err:?}");
}

#[test]
fn cpu_limit_applies_to_top_level_code() {
    let err = check("while (true) {} export default () => 1;", &limits()).unwrap_err();
    assert!(matches!(err, CodeError::CpuLimit { .. }), "{err:?}");
}

#[test]
fn cpu_limit_stops_catastrophic_regex() {
    let source = r#"export default () => /^(a+)+$/.test("a".repeat(40) + "b")"#;
    let err = run_err(source);
    assert!(matches!(err, CodeError::CpuLimit { .. }), "{err:?}");
}

#[test]
fn caught_allocation_failure_lets_code_recover() {
    let small = SandboxLimits { memory_bytes: 8 * 1024 * 1024, ..limits() };
    let source = r#"export default () => {
        try { return new ArrayBuffer(64 * 1024 * 1024).byteLength; }
        catch (e) { return String(e); }
    }"#;
    // Catching the allocation failure is the code's own business: it recovers and returns.
    let result = run(source, &json!(null), &small).unwrap();
    assert_eq!(result, json!("InternalError: out of memory"));
}

#[test]
fn deep_recursion_is_stopped_by_stack_limit() {
    let text = thrown_text("const f = (n) => f(n + 1) + 1; export default () => f(0);");
    assert!(text.contains("call stack"), "{text}");
}

#[test]
fn clock_is_unavailable() {
    let text = thrown_text("export default () => Date.now()");
    assert!(text.contains("the clock is not available"), "{text}");
    let text = thrown_text("export default () => new Date().toISOString()");
    assert!(text.contains("the clock is not available"), "{text}");
    let text = thrown_text("export default () => Date()");
    assert!(text.contains("the clock is not available"), "{text}");
    let text = thrown_text("export default () => new Date.prototype.constructor()");
    assert!(text.contains("the clock is not available"), "{text}");
}

#[test]
fn explicit_dates_still_work() {
    let source = r#"export default () => [
        new Date(0).toISOString(),
        new Date("2024-05-01T00:00:00Z").getTime(),
        Date.UTC(2020, 0, 1),
        new Date(0) instanceof Date,
    ]"#;
    assert_eq!(
        run_ok(source, json!(null)),
        json!(["1970-01-01T00:00:00.000Z", 1_714_521_600_000_u64, 1_577_836_800_000_u64, true])
    );
}

#[test]
fn random_is_unavailable() {
    let text = thrown_text("export default () => Math.random()");
    assert!(text.contains("Math.random is not available"), "{text}");
}

#[test]
fn static_import_fails() {
    let text = thrown_text(r#"import fs from "fs"; export default () => fs"#);
    assert!(text.contains("could not load module 'fs'"), "{text}");
    assert!(text.contains("imports are not available"), "{text}");
    let err = check(r#"import fs from "fs"; export default () => fs"#, &limits());
    assert!(matches!(err, Err(CodeError::Thrown(_))), "{err:?}");
}

#[test]
fn dynamic_import_fails() {
    let text = thrown_text(r#"export default async () => (await import("x")).default"#);
    assert!(text.contains("could not load module 'x'"), "{text}");
}

#[test]
fn no_host_globals() {
    let source = r#"export default () => [
        typeof require, typeof process, typeof fetch, typeof XMLHttpRequest,
        typeof setTimeout, typeof performance, typeof std, typeof os,
        typeof WeakRef, typeof FinalizationRegistry,
    ]"#;
    let result = run_ok(source, json!(null));
    let kinds = result.as_array().unwrap();
    assert_eq!(kinds.len(), 10);
    assert!(kinds.iter().all(|kind| kind == "undefined"), "{result}");
}

#[test]
fn undefined_result_is_null() {
    assert_eq!(run_ok("export default () => {}", json!(1)), json!(null));
    assert_eq!(run_ok("export default async () => {}", json!(1)), json!(null));
}

#[test]
fn returning_function_is_not_json() {
    let err = run_err("export default () => () => 1");
    assert!(matches!(err, CodeError::NotJson(_)), "{err:?}");
}

#[test]
fn nested_function_symbol_or_bigint_is_not_json() {
    for value in ["({ f() {} })", "[Symbol('s')]", "({ n: 10n })"] {
        let err = run_err(&format!("export default () => {value}"));
        assert!(matches!(err, CodeError::NotJson(_)), "{value}: {err:?}");
    }
    let err = run_err("export default () => { const a = {}; a.self = a; return a; }");
    assert!(matches!(err, CodeError::NotJson(_)), "cycle: {err:?}");
}

#[test]
fn state_does_not_leak_between_calls() {
    let set = "export default () => { globalThis.leak = 42; Object.prototype.polluted = 1; }";
    run_ok(set, json!(null));
    let read = "export default () => [typeof leak, typeof ({}).polluted]";
    assert_eq!(run_ok(read, json!(null)), json!(["undefined", "undefined"]));
}

#[tokio::test]
async fn runs_inside_spawn_blocking() {
    let result = tokio::task::spawn_blocking(|| run("export default (x) => x + 1", &json!(41), &limits()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result, json!(42));
}

#[test]
fn input_round_trips_exactly() {
    let input = json!({ "s": "é\u{0}\n\"", "n": -1.5, "b": true, "z": null, "a": [1, {}] });
    assert_eq!(run_ok("export default (x) => x", input.clone()), input);
}
