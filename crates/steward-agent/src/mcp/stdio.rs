//! Stdio servers: the command runs as the leader of its own process group, so that closing the
//! session (or dropping it) stops whatever the command started too. Its environment is ours
//! reduced to a few harmless variables, plus what the spec sets. Its stderr is read here: the
//! last lines explain a failed start, and every line goes to the debug log, shortened.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop};
use rmcp::transport::TokioChildProcess;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::ChildStderr;
use tokio::task::JoinHandle;

use super::McpError;

/// The variables of ours a server inherits: enough to find programs and a home directory.
const INHERITED: &[&str] = &["PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// Stderr lines kept for error messages, and the longest kept or logged.
const TAIL_LINES: usize = 10;
const LINE_CHARS: usize = 300;
/// The longest stretch read as one line.
const READ_LIMIT: u64 = 8 * 1024;

/// A started server process.
#[derive(Debug)]
pub(super) struct Child {
    pub pid: Option<u32>,
    tail: Arc<Mutex<VecDeque<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Child {
    /// The last lines the server wrote to stderr, joined by ` | `.
    pub fn stderr_tail(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.iter().map(String::as_str).collect::<Vec<_>>().join(" | ")
    }

    /// The stderr tail once the process's stderr has closed (or after a short wait), so that a
    /// server that failed at start has had its say.
    pub async fn settled_stderr_tail(&mut self) -> String {
        if let Some(reader) = self.reader.as_mut() {
            let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
        }
        self.stderr_tail()
    }
}

/// Starts `command` with piped stdin and stdout for the protocol.
pub(super) fn spawn(
    server: &str,
    command: &str,
    args: &[String],
    env: &[(String, String)],
) -> Result<(TokioChildProcess, Child), McpError> {
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args).env_clear();
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut wrapped = CommandWrap::from(cmd);
    #[cfg(unix)]
    wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
    // Should the cleanup task never run (a runtime shutting down), dropping the process still kills it.
    wrapped.wrap(KillOnDrop);
    let (process, stderr) =
        TokioChildProcess::builder(wrapped).stderr(Stdio::piped()).spawn().map_err(|source| {
            McpError::Start { server: server.to_owned(), command: command.to_owned(), source }
        })?;
    let pid = process.id();
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let reader = stderr.map(|stderr| tokio::spawn(follow(server.to_owned(), stderr, tail.clone())));
    Ok((process, Child { pid, tail, reader }))
}

/// Reads stderr until it closes, logging each line at debug level and keeping the last few.
async fn follow(server: String, stderr: ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader).take(READ_LIMIT).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        let line = shorten(text);
        tracing::debug!(server = %server, "MCP server stderr: {line}");
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_shortened_on_a_char_boundary() {
        let long = "é".repeat(LINE_CHARS + 5);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), LINE_CHARS + 1);
        assert!(short.ends_with('…'));
        assert_eq!(shorten("short"), "short");
    }
}
