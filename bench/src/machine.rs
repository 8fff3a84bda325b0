//! `machine`: one JSON line describing where the benchmarks ran (processors, CPU model,
//! memory, OS, kernel, rustc) and how busy it was (`/proc/loadavg`), written by `bench/run.sh`
//! before and after the scenarios so the numbers can be read in context.

use serde_json::{Value, json};

pub fn describe(when: &str) -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_owned()));
    let meminfo = read("/proc/meminfo");
    let mem_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse::<u64>().ok());
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()));
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    json!({
        "machine": when,
        "nproc": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu": cpu,
        "mem_gib": mem_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "os": os,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "rustc": rustc,
        "loadavg": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}
