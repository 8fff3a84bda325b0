//! Live step progress for `steward run`: spinners on a terminal, plain lines otherwise. Both go
//! to stderr so stdout carries only the result.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use steward_engine::{Entry, Event};

pub struct Display {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    started: HashMap<String, i64>,
    quiet: bool,
}

impl Display {
    /// `quiet` prints nothing (for `--json`).
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Self { multi, bars: HashMap::new(), started: HashMap::new(), quiet }
    }

    pub fn show(&mut self, entry: &Entry) {
        if self.quiet {
            return;
        }
        let at = entry.at.millis();
        match &entry.event {
            Event::StepStarted { key, attempt } => {
                self.started.entry(key.clone()).or_insert(at);
                let msg = if *attempt > 1 { format!("{key} (attempt {attempt})") } else { key.clone() };
                self.running(key, msg);
            }
            Event::StepSucceeded { key, .. } => self.done(key, "✓", "succeeded", at, None),
            Event::StepSkipped { key } => self.done(key, "-", "skipped", at, None),
            Event::StepFailed { key, error, continued } => {
                let how = if *continued { "failed (continuing)" } else { "failed" };
                self.done(key, "✗", how, at, Some(error.message.clone()));
            }
            Event::StepCancelled { key } => self.done(key, "✗", "cancelled", at, None),
            Event::StepRetrying { key, attempt, error, retry_at } => {
                let wait = (retry_at.millis() - at).max(0);
                self.line(format!(
                    "  ↻ {key} attempt {attempt} failed: {}; retrying in {}",
                    error.message,
                    ms(wait)
                ));
            }
            Event::StepWaiting { key, until } => {
                self.running(key, format!("{key} waiting {}", ms((until.millis() - at).max(0))))
            }
            Event::StepSuspended { key, message, .. } => {
                let msg = message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                self.running(key, format!("{key} waiting for approval{msg}"));
            }
            Event::HandlerStarted { key, error } => {
                self.line(format!("  ! {key} failed ({}); running its error handler", error.message))
            }
            Event::RunCancelled { reason } => self.line(format!("run cancelled: {reason}")),
            Event::StepRecorded { key, record } => self.agent_progress(key, record),
            _ => {}
        }
    }

    /// An agent's model turns and tool calls, one line each.
    fn agent_progress(&mut self, key: &str, record: &serde_json::Value) {
        match record["type"].as_str() {
            Some("turn") => {
                let model = record["model"].as_str().unwrap_or("?");
                let (tokens_in, tokens_out) =
                    (&record["usage"]["input_tokens"], &record["usage"]["output_tokens"]);
                self.line(format!("  · {key} {model} answered ({tokens_in} tokens in, {tokens_out} out)"));
                for call in record["tool_calls"].as_array().into_iter().flatten() {
                    self.line(format!("  · {key} calls {}", call["name"].as_str().unwrap_or("?")));
                }
            }
            Some("tool") if record["is_error"] == true => {
                self.line(format!("  · {key} tool {} failed", record["name"].as_str().unwrap_or("?")))
            }
            _ => {}
        }
    }

    fn running(&mut self, key: &str, msg: String) {
        match &self.multi {
            Some(multi) => {
                let bar = self.bars.entry(key.to_owned()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} {elapsed:.dim}") {
                        bar.set_style(style);
                    }
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar
                });
                bar.set_message(msg);
            }
            None => eprintln!("  … {msg}"),
        }
    }

    fn done(&mut self, key: &str, mark: &str, how: &str, at: i64, detail: Option<String>) {
        let took = self.started.get(key).map(|s| format!(" in {}", ms(at - s))).unwrap_or_default();
        let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
        let line = format!("  {mark} {key} {how}{took}{detail}");
        match self.bars.remove(key) {
            Some(bar) => bar.finish_with_message(format!("{mark} {key} {how}{took}{detail}")),
            None => self.line(line),
        }
    }

    fn line(&self, text: String) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    pub fn finish(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.abandon();
        }
    }
}

fn ms(ms: i64) -> String {
    if ms < 1000 { format!("{ms}ms") } else { format!("{:.1}s", ms as f64 / 1000.0) }
}
