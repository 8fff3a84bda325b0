//! The `code` step: user JavaScript run in a QuickJS sandbox.
//!
//! A flow author writes an ES module whose default export is a (possibly async) function:
//!
//! ```js
//! export default ({ steps, inputs }) => ({ tier: "vip", name: steps.lookup.output.body.name })
//! ```
//!
//! [`run`] calls that function with the step's templated input (a JSON value) and returns its
//! JSON result; [`check`] only compiles and evaluates the module so flow validation can reject a
//! broken step before a run starts.
//!
//! # Security invariants
//!
//! - **Nothing is shared between calls.** Every call builds a fresh QuickJS `Runtime` and
//!   `Context` and drops them before returning, so no global, prototype change or pending job
//!   survives from one run to the next.
//! - **No I/O.** The context only gets the core language intrinsics (objects, JSON, RegExp,
//!   Map/Set, typed arrays, Promise, Proxy, Date). There is no `std`/`os` module, no module
//!   loader (so every static or dynamic `import` fails), no timers, no `fetch`, `require`,
//!   `process`, `console`, `performance` or `WeakRef`/`FinalizationRegistry`.
//! - **Deterministic.** The clock (`Date.now()`, `new Date()` without arguments, `Date()`)
//!   and `Math.random()` throw; time and randomness must come in through the input.
//! - **Bounded memory.** The runtime's allocator refuses to grow beyond
//!   [`SandboxLimits::memory_bytes`] and the JS stack beyond
//!   [`SandboxLimits::max_stack_bytes`]. The limit is applied after the sandbox's own setup
//!   (context, prelude), and automatic garbage collection is switched off, because QuickJS
//!   can crash when a GC cycle starts while it reports an out-of-memory condition. Acyclic
//!   garbage is still freed at once by reference counting; cyclic garbage counts against the
//!   limit until the run ends. When QuickJS cannot even allocate the error for an
//!   out-of-memory condition it throws a bare `null`, so an escaping `null` is reported as
//!   [`CodeError::MemoryLimit`] (a step that deliberately throws `null` is reported that way too).
//! - **Bounded time.** An interrupt handler polled by the interpreter aborts execution once
//!   [`SandboxLimits::cpu_time`] has elapsed. It keeps answering "interrupt" after the
//!   deadline, so a `try`/`catch` (or a promise `catch`) cannot swallow it, and the
//!   [`CodeError::CpuLimit`] verdict is taken from a flag set by the handler, never from
//!   error text.
//!
//! `run` is synchronous and CPU-bound: call it from `tokio::task::spawn_blocking` (or another
//! dedicated thread) whose native stack is comfortably larger than
//! [`SandboxLimits::max_stack_bytes`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rquickjs::context::intrinsic;
use rquickjs::convert::Coerced;
use rquickjs::promise::PromiseState;
use rquickjs::{Context, Ctx, FromJs, Function, Module, Persistent, Runtime, Type, Value};

/// Name the user's module is compiled under; it shows up in stack traces.
const MODULE_NAME: &str = "code-step.js";

/// Messages of the `InternalError` QuickJS throws when the allocator refuses a request: the
/// normal one, the fallback when the message string cannot be allocated, and the empty
/// (prototype) message when not even that fallback fits.
const OUT_OF_MEMORY_MESSAGES: [&str; 3] = ["out of memory", "Invalid error message", ""];

/// The largest stack limit QuickJS honours; rquickjs treats anything above it as "no limit".
const MAX_STACK_LIMIT: usize = 1 << 24;

/// Script run in every fresh context before the user's module: removes clock and randomness.
///
/// The original `Date` constructor is only reachable through this closure, so user code
/// cannot get at the clock again; `new Date(explicitValue)` and the static helpers keep working.
const PRELUDE: &str = r#"(() => {
  "use strict";
  const RealDate = Date;
  const realPrototype = RealDate.prototype;
  const clockError = () =>
    new Error("the clock is not available in code steps; pass time in through inputs");
  const SandboxDate = function Date(...args) {
    if (new.target === undefined || args.length === 0) throw clockError();
    return Reflect.construct(RealDate, args, new.target);
  };
  const hidden = (value) => ({ value, writable: true, configurable: true });
  Object.defineProperties(SandboxDate, {
    prototype: { value: realPrototype, writable: false },
    now: hidden(function now() { throw clockError(); }),
    parse: hidden(RealDate.parse),
    UTC: hidden(RealDate.UTC),
  });
  Object.defineProperty(realPrototype, "constructor", hidden(SandboxDate));
  Object.defineProperty(globalThis, "Date", hidden(SandboxDate));
  Object.defineProperty(Math, "random", hidden(function random() {
    throw new Error(
      "Math.random is not available in code steps; pass random values in through inputs");
  }));
})();"#;

/// `JSON.stringify` replacer that refuses values JSON cannot represent instead of silently
/// dropping them. Created before user code runs, so it captures the real `TypeError`.
const JSON_REPLACER: &str = r#"(() => {
  const Refuse = TypeError;
  const where = (key) => (key === "" ? "the result" : `the value at key ${JSON.stringify(key)}`);
  return function (key, value) {
    const kind = typeof value;
    if (kind === "function" || kind === "symbol" || kind === "bigint") {
      throw new Refuse(`${where(key)} is a ${kind}, which has no JSON representation`);
    }
    return value;
  };
})()"#;

/// Hard limits applied to one sandboxed call.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Most bytes the QuickJS runtime may allocate (heap, strings, bytecode, everything).
    pub memory_bytes: usize,
    /// Time the interpreter may spend on the call (compilation, evaluation and promise jobs).
    pub cpu_time: Duration,
    /// Most bytes of native stack the interpreter may use; deep recursion throws instead.
    pub max_stack_bytes: usize,
}

impl Default for SandboxLimits {
    /// 64 MiB of memory, 5 s of time and 1 MiB of stack.
    fn default() -> Self {
        Self {
            memory_bytes: 64 * 1024 * 1024,
            cpu_time: Duration::from_secs(5),
            max_stack_bytes: 1024 * 1024,
        }
    }
}

/// Why a sandboxed call failed.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// The source is not a valid ES module.
    #[error("syntax error in code: {0}")]
    Syntax(String),
    /// The code threw (or its promise rejected); the message and stack if available.
    #[error("code threw: {0}")]
    Thrown(String),
    /// The runtime ran out of its memory budget.
    #[error("code exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimit {
        /// The configured [`SandboxLimits::memory_bytes`].
        limit_bytes: usize,
    },
    /// The code ran past its time budget and was interrupted.
    #[error("code exceeded its CPU time limit of {limit_ms} ms")]
    CpuLimit {
        /// The configured [`SandboxLimits::cpu_time`] in milliseconds.
        limit_ms: u64,
    },
    /// The module has no default export, or it is not a function.
    #[error("code must `export default` a function")]
    NoDefaultExport,
    /// The function's result cannot be represented as JSON.
    #[error("code returned a value that is not JSON: {0}")]
    NotJson(String),
}

/// Runs `source` (an ES module whose default export is a function, possibly async) with `input`
/// (a JSON value passed as the single argument) and returns the function's JSON result
/// (`undefined` becomes JSON null).
pub fn run(
    source: &str,
    input: &serde_json::Value,
    limits: &SandboxLimits,
) -> Result<serde_json::Value, CodeError> {
    Sandbox::new(limits)?.run(source, input.to_string())
}

/// Checks that `source` parses as a module with a default export, without running the function.
/// Used by flow validation before a run starts. (Evaluating top-level module code is allowed under the same limits.)
pub fn check(source: &str, limits: &SandboxLimits) -> Result<(), CodeError> {
    let sandbox = Sandbox::new(limits)?;
    let namespace = sandbox.load(source)?;
    sandbox.execute(|ctx| default_export(ctx, namespace).map(drop))
}

/// A JS value kept across [`Context::with`] calls.
///
/// Every `Kept` lives in a function that borrows its [`Sandbox`], so it is always dropped
/// before the runtime (QuickJS aborts if a value outlives its runtime).
type Kept = Persistent<Value<'static>>;

/// A fresh runtime and context with the limits installed.
struct Sandbox {
    context: Context,
    watchdog: Watchdog,
    limits: SandboxLimits,
}

impl Sandbox {
    /// Builds the runtime and context, runs the prelude, then installs the limits.
    ///
    /// The context and prelude are set up before the memory limit is applied: they are the
    /// sandbox's own fixed overhead, and QuickJS does not cope well with running out of memory
    /// half-way through initialising its intrinsics (it can trip internal assertions).
    fn new(limits: &SandboxLimits) -> Result<Self, CodeError> {
        let limits = limits.clone();
        let watchdog = Watchdog::start(limits.cpu_time);
        let host_out_of_memory = || CodeError::MemoryLimit { limit_bytes: limits.memory_bytes };
        let runtime = Runtime::new().map_err(|_| host_out_of_memory())?;
        runtime.set_max_stack_size(limits.max_stack_bytes.clamp(1, MAX_STACK_LIMIT));
        let handler = watchdog.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || handler.poll())));
        let context = Context::builder()
            .with::<SandboxIntrinsics>()
            .build(&runtime)
            .map_err(|_| host_out_of_memory())?;
        let sandbox = Self { context, watchdog, limits };
        sandbox.execute(|ctx| evaluate::<()>(ctx, PRELUDE))?;
        // No automatic garbage collection: QuickJS can start a GC cycle while it builds the
        // "out of memory" error, at a moment its heap is inconsistent (a shape being resized is
        // unlinked from the GC list), and crash the process. Reference counting still frees
        // acyclic garbage immediately; cycles are collected when the runtime is dropped.
        runtime.set_gc_threshold(usize::MAX);
        // 0 means "unlimited" to QuickJS; a sandbox never wants that.
        runtime.set_memory_limit(sandbox.limits.memory_bytes.max(1));
        Ok(sandbox)
    }

    /// Loads `source`, calls its default export with the JSON text `input`, and returns the
    /// (settled) result as JSON.
    fn run(&self, source: &str, input: String) -> Result<serde_json::Value, CodeError> {
        // Built before user code runs, so it captures the genuine `TypeError`.
        let replacer = self.execute(|ctx| evaluate::<Value>(ctx, JSON_REPLACER).map(|f| keep(ctx, f)))?;
        let namespace = self.load(source)?;
        let returned = self.execute(|ctx| {
            let function = default_export(ctx, namespace)?;
            let argument = ctx.json_parse(input).map_err(|e| Failure::Thrown(caught(ctx, e)))?;
            let returned =
                function.call::<_, Value>((argument,)).map_err(|e| Failure::Thrown(caught(ctx, e)))?;
            Ok(keep(ctx, returned))
        })?;
        let result = self.settle(returned)?;
        self.execute(|ctx| to_json(ctx, restore(ctx, result)?, restore(ctx, replacer)?))
    }

    /// Compiles and evaluates the user's module (including top-level `await`) and returns its
    /// namespace object.
    fn load(&self, source: &str) -> Result<Kept, CodeError> {
        let (namespace, evaluation) = self.execute(|ctx| {
            let declared = Module::declare(ctx.clone(), MODULE_NAME, source)
                .map_err(|e| Failure::Compile(caught(ctx, e)))?;
            let (module, evaluation) = declared.eval().map_err(|e| Failure::Thrown(caught(ctx, e)))?;
            let namespace = module.namespace().map_err(|e| Failure::Thrown(caught(ctx, e)))?;
            Ok((keep(ctx, namespace.into_value()), keep(ctx, evaluation.into_value())))
        })?;
        self.settle(evaluation)?;
        Ok(namespace)
    }

    /// If `value` is a promise, runs the job queue (under the watchdog) until it settles and
    /// returns what it resolved to; other values are returned as they are.
    ///
    /// Jobs run outside [`Context::with`] through [`Runtime::execute_pending_job`], which
    /// reports a job that failed (out of memory, interrupted, an exception thrown from a
    /// `queueMicrotask` callback) instead of silently dropping the exception. If the promise
    /// never settles, the first such failure is the error reported.
    fn settle(&self, value: Kept) -> Result<Kept, CodeError> {
        let mut job_failure = None;
        loop {
            let (pending, stray) =
                self.execute(|ctx| Ok((is_pending(ctx, value.clone())?, stray_exception(ctx))))?;
            if let Some(stray) = stray {
                job_failure.get_or_insert(stray);
            }
            if !pending {
                break;
            }
            if self.watchdog.poll() {
                return Err(self.classify(Failure::Expired));
            }
            match self.context.runtime().execute_pending_job() {
                Ok(true) => {}
                Ok(false) => {
                    return Err(self.classify(job_failure.map_or(Failure::NeverSettled, Failure::Thrown)));
                }
                Err(exception) => {
                    // The job's exception is left pending on the context it ran in.
                    let failure = exception.0.with(|ctx| describe(&ctx.catch()));
                    job_failure.get_or_insert(failure);
                }
            }
        }
        self.execute(|ctx| settled_value(ctx, value))
    }

    /// Runs `body` inside the context and turns an in-context [`Failure`] into a [`CodeError`].
    fn execute<T>(&self, body: impl FnOnce(&Ctx<'_>) -> Result<T, Failure>) -> Result<T, CodeError> {
        self.context.with(|ctx| body(&ctx)).map_err(|failure| self.classify(failure))
    }

    /// Classifies `failure` with the watchdog's verdict and the configured limits.
    fn classify(&self, failure: Failure) -> CodeError {
        failure.classify(self.watchdog.tripped(), &self.limits)
    }
}

/// The only intrinsics a code step gets: the core language, no clock-like or I/O extras
/// (no `performance`, no `WeakRef`/`FinalizationRegistry`, no `DOMException`).
type SandboxIntrinsics = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::Proxy,
    intrinsic::MapSet,
    intrinsic::TypedArrays,
    intrinsic::Promise,
);

/// The time budget of one call, shared with the interpreter's interrupt handler.
#[derive(Clone)]
struct Watchdog {
    /// `None` when the budget is too large to represent (effectively unlimited).
    deadline: Option<Instant>,
    /// Set once the deadline has passed; never cleared.
    tripped: Arc<AtomicBool>,
}

impl Watchdog {
    /// Starts the clock on a budget of `budget`.
    fn start(budget: Duration) -> Self {
        Self { deadline: Instant::now().checked_add(budget), tripped: Arc::new(AtomicBool::new(false)) }
    }

    /// Whether execution must stop; trips the flag the first time the deadline is seen passed.
    fn poll(&self) -> bool {
        if self.tripped() {
            return true;
        }
        let expired = self.deadline.is_some_and(|deadline| Instant::now() >= deadline);
        if expired {
            self.tripped.store(true, Ordering::SeqCst);
        }
        expired
    }

    /// Whether the deadline has been observed as passed.
    fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }
}

/// A JS-side exception (or rquickjs error), captured while still inside the context.
struct Caught {
    /// QuickJS reported that an allocation failed.
    out_of_memory: bool,
    /// The thrown value was `null` or missing altogether: what QuickJS leaves behind when it
    /// cannot even allocate the error object for an out-of-memory condition.
    no_value: bool,
    /// The `name` of the thrown error (`SyntaxError`, `TypeError`, ...), if it was an error.
    error_name: Option<String>,
    /// `Name: message` (or the string form of a thrown non-error value).
    headline: String,
    /// The error's stack trace, when it has one.
    stack: Option<String>,
}

impl Caught {
    /// Describes a failure that did not come from a JS value (an rquickjs or serde error).
    fn plain(out_of_memory: bool, headline: String) -> Self {
        Self { out_of_memory, no_value: false, error_name: None, headline, stack: None }
    }

    /// The headline followed by the stack trace, if any.
    fn with_stack(self) -> String {
        match self.stack {
            Some(stack) => format!("{}\n{stack}", self.headline),
            None => self.headline,
        }
    }
}

/// How a call failed, as seen inside the context, before it is classified into a [`CodeError`].
enum Failure {
    /// One of the sandbox's own scripts failed; only resource limits can cause that.
    Setup(Caught),
    /// Compiling the module failed.
    Compile(Caught),
    /// Evaluation, the call, a promise job or the returned promise threw.
    Thrown(Caught),
    /// The default export is missing or is not a function.
    NoDefaultExport,
    /// The result could not be turned into JSON.
    NotJson(Caught),
    /// A promise stayed pending with no jobs left to run (and no job failed).
    NeverSettled,
    /// The time budget ran out while driving the job queue.
    Expired,
}

impl Failure {
    /// Maps the failure to the public error. Resource limits win over whatever error text the
    /// interrupted or starved code produced, and the CPU verdict comes from the watchdog flag.
    fn classify(self, cpu_exhausted: bool, limits: &SandboxLimits) -> CodeError {
        let limit_ms = u64::try_from(limits.cpu_time.as_millis()).unwrap_or(u64::MAX);
        let memory_limit = CodeError::MemoryLimit { limit_bytes: limits.memory_bytes };
        if cpu_exhausted {
            return CodeError::CpuLimit { limit_ms };
        }
        match self {
            // A bare `null` (or no exception value at all) is what QuickJS leaves when it cannot
            // even allocate the error object for an out-of-memory condition, the usual case
            // when the failing allocation was small. It cannot be told apart from `throw null`,
            // so a code step that throws `null` itself is reported as a memory limit too.
            Self::Setup(c) | Self::Compile(c) | Self::Thrown(c) | Self::NotJson(c)
                if c.out_of_memory || c.no_value =>
            {
                memory_limit
            }
            // Compilation also resolves static imports; only real parse errors are syntax errors.
            Self::Compile(c) if c.error_name.as_deref().is_none_or(|n| n == "SyntaxError") => {
                CodeError::Syntax(c.with_stack())
            }
            Self::Setup(c) | Self::Compile(c) | Self::Thrown(c) => CodeError::Thrown(c.with_stack()),
            // The stack would only point into the sandbox's own JSON replacer.
            Self::NotJson(c) => CodeError::NotJson(c.headline),
            Self::NoDefaultExport => CodeError::NoDefaultExport,
            Self::NeverSettled => CodeError::Thrown(
                "the returned promise never settled (timers and I/O are not available in code \
                 steps, so nothing could resolve it)"
                    .to_owned(),
            ),
            Self::Expired => CodeError::CpuLimit { limit_ms },
        }
    }
}

/// Evaluates one of our own scripts (prelude, helpers) in the context.
fn evaluate<'js, T: FromJs<'js>>(ctx: &Ctx<'js>, script: &str) -> Result<T, Failure> {
    ctx.eval::<T, _>(script).map_err(|e| Failure::Setup(caught(ctx, e)))
}

/// Keeps `value` alive across [`Context::with`] calls.
fn keep<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Kept {
    Persistent::save(ctx, value)
}

/// Brings a [`Kept`] value back into the context.
fn restore<'js>(ctx: &Ctx<'js>, kept: Kept) -> Result<Value<'js>, Failure> {
    kept.restore(ctx).map_err(|e| Failure::Thrown(caught(ctx, e)))
}

/// The module's default export, if it is a function.
fn default_export<'js>(ctx: &Ctx<'js>, namespace: Kept) -> Result<Function<'js>, Failure> {
    let namespace = restore(ctx, namespace)?;
    let export = match namespace.as_object() {
        Some(namespace) => {
            namespace.get::<_, Value>("default").map_err(|e| Failure::Thrown(caught(ctx, e)))?
        }
        None => return Err(Failure::NoDefaultExport),
    };
    export.into_function().ok_or(Failure::NoDefaultExport)
}

/// Whether `value` is a promise that has neither resolved nor rejected yet.
fn is_pending(ctx: &Ctx<'_>, value: Kept) -> Result<bool, Failure> {
    let value = restore(ctx, value)?;
    Ok(value.as_promise().is_some_and(|promise| promise.state() == PromiseState::Pending))
}

/// An exception left pending by a job that still reported success. QuickJS ignores a failure
/// to queue a promise reaction (out of memory), leaving the promise pending forever and the
/// exception behind; it is the only trace of why the promise never settled.
fn stray_exception(ctx: &Ctx<'_>) -> Option<Caught> {
    ctx.has_exception().then(|| describe(&ctx.catch()))
}

/// The value a settled promise resolved to (a rejection becomes [`Failure::Thrown`]), or
/// `value` itself when it is not a promise.
fn settled_value(ctx: &Ctx<'_>, value: Kept) -> Result<Kept, Failure> {
    let value = restore(ctx, value)?;
    let Some(promise) = value.as_promise() else {
        return Ok(keep(ctx, value));
    };
    match promise.result::<Value>() {
        Some(Ok(resolved)) => Ok(keep(ctx, resolved)),
        Some(Err(e)) => Err(Failure::Thrown(caught(ctx, e))),
        None => Err(Failure::NeverSettled),
    }
}

/// Serializes `value` with `JSON.stringify` (via the refusing replacer) and parses the text
/// into a `serde_json::Value`; `undefined` becomes `null`.
fn to_json<'js>(
    ctx: &Ctx<'js>,
    value: Value<'js>,
    replacer: Value<'js>,
) -> Result<serde_json::Value, Failure> {
    let text = ctx
        .json_stringify_replacer(value, replacer)
        .and_then(|text| text.map(|s| s.to_string()).transpose())
        .map_err(|e| Failure::NotJson(caught(ctx, e)))?;
    let Some(text) = text else {
        return Ok(serde_json::Value::Null);
    };
    serde_json::from_str(&text).map_err(|e| Failure::NotJson(Caught::plain(false, e.to_string())))
}

/// Captures an rquickjs error, taking the pending JS exception out of the context if any.
fn caught(ctx: &Ctx<'_>, error: rquickjs::Error) -> Caught {
    match error {
        rquickjs::Error::Exception => describe(&ctx.catch()),
        rquickjs::Error::Allocation => Caught::plain(true, error.to_string()),
        other => Caught::plain(false, other.to_string()),
    }
}

/// The `name` of `value` if it is an error object (`TypeError`, `InternalError`, ...).
fn error_name(value: &Value<'_>) -> Option<String> {
    value.as_exception().and_then(|exception| exception.get::<_, String>("name").ok())
}

/// Describes a thrown value: `Name: message` plus the stack for errors, the string
/// conversion for anything else.
fn describe(value: &Value<'_>) -> Caught {
    let Some(exception) = value.as_exception() else {
        let headline = value
            .get::<Coerced<String>>()
            .map(|text| text.0)
            .unwrap_or_else(|_| format!("a thrown {} value", value.type_name()));
        return Caught {
            no_value: matches!(value.type_of(), Type::Null | Type::Uninitialized),
            ..Caught::plain(false, headline)
        };
    };
    let error_name = error_name(value);
    let message = exception.message().unwrap_or_default();
    let out_of_memory =
        error_name.as_deref() == Some("InternalError") && OUT_OF_MEMORY_MESSAGES.contains(&message.as_str());
    let headline = match error_name.as_deref() {
        Some(name) if !name.is_empty() => format!("{name}: {message}"),
        _ => message,
    };
    let stack =
        exception.stack().map(|stack| stack.trim_end().to_owned()).filter(|stack| !stack.trim().is_empty());
    Caught { out_of_memory, no_value: false, error_name, headline: with_import_hint(headline), stack }
}

/// Explains QuickJS's "could not load module" error: there is no module loader by design.
fn with_import_hint(message: String) -> String {
    if message.contains("could not load module") {
        format!("{message} (imports are not available in code steps)")
    } else {
        message
    }
}

#[cfg(test)]
mod tests;
