//! The `steward` binary as a child process: finding it, its memory, stopping it.

use std::path::PathBuf;

use anyhow::Context;
use tokio::process::Child;

use crate::RunArgs;

/// The release `steward` binary: `--steward-bin`, or the one next to this binary.
pub fn steward_bin(args: &RunArgs) -> anyhow::Result<PathBuf> {
    let bin = match &args.steward_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("steward"),
    };
    anyhow::ensure!(
        bin.is_file(),
        "no steward binary at {}; build it with `cargo build --release -p steward` or pass --steward-bin",
        bin.display()
    );
    Ok(bin)
}

/// Kills the process and waits for it.
pub async fn stop(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Peak and current resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub hwm_kib: u64,
    pub rss_kib: u64,
}

pub fn read_memory(child: &Child) -> anyhow::Result<Memory> {
    let pid = child.id().context("the process has exited")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name}"))?;
        let kib = line.split_whitespace().nth(1).with_context(|| format!("bad {name} line"))?;
        Ok(kib.parse()?)
    };
    Ok(Memory { hwm_kib: field("VmHWM:")?, rss_kib: field("VmRSS:")? })
}
