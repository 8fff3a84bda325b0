//! `steward retention prune` on a data directory made by the real binary: a dry run prints
//! what a real pass then deletes, and changes nothing.

use std::process::Output;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_steward");

struct Dir(tempfile::TempDir);

impl Dir {
    fn run(&self, args: &[&str]) -> Output {
        let mut c = steward_testkit::steward_command(BIN);
        c.arg("--data-dir").arg(self.0.path().join("data"));
        c.args(args).output().expect("steward")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf8")
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("json")
    }

    fn flow(&self, name: &str, text: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.to_string_lossy().into_owned()
    }
}

#[test]
fn prune_dry_run_then_for_real() {
    let d = Dir(tempfile::tempdir().expect("dir"));
    // Periods of zero: due at the first pass after the run ends.
    let lean = d.flow(
        "lean.yaml",
        "name: lean\nretention: { payloads: 0s }\nsteps:\n  - { id: a, transform: '\"lean-canary\"' }\noutput: ${{ .steps.a.output }}\n",
    );
    let gone = d.flow(
        "gone.yaml",
        "name: gone\nretention: { metadata: 0s }\nsteps:\n  - { id: a, transform: '1' }\n",
    );
    let kept = d.flow("kept.yaml", "name: kept\nsteps:\n  - { id: a, transform: '\"kept-canary\"' }\n");
    let lean_run = d.json(&["run", "--json", &lean])["run_id"].as_str().expect("id").to_owned();
    d.json(&["run", "--json", &gone]);
    let kept_run = d.json(&["run", "--json", &kept])["run_id"].as_str().expect("id").to_owned();
    let shown = |run: &str| d.ok(&["runs", "show", "--json", run]);
    assert!(shown(&lean_run).contains("lean-canary"));

    let text = d.ok(&["retention", "prune", "--dry-run"]);
    assert!(text.contains("default\tmetadata of 1 runs\twould delete"), "{text}");
    assert!(text.contains("default\tpayloads of 1 runs\twould delete"), "{text}");
    let dry = d.json(&["retention", "prune", "--dry-run", "--json"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        d.json(&["runs", "list", "--json"]).as_array().map(Vec::len),
        Some(3),
        "the dry run deleted nothing"
    );
    assert!(shown(&lean_run).contains("lean-canary"), "the dry run stripped nothing");
    let other = d.ok(&["retention", "prune", "--dry-run", "--workspace", "elsewhere"]);
    assert_eq!(other.trim(), "nothing to delete");

    let real = d.json(&["retention", "prune", "--json"]);
    assert_eq!(real["removals"], dry["removals"], "the dry run counted what the real pass did");
    let runs = d.json(&["runs", "list", "--json"]);
    let flows: Vec<&str> =
        runs.as_array().expect("runs").iter().filter_map(|r| r["flow_name"].as_str()).collect();
    assert_eq!(flows.len(), 2, "{flows:?}");
    assert!(!flows.contains(&"gone"));
    assert!(!shown(&lean_run).contains("lean-canary"));
    assert!(shown(&kept_run).contains("kept-canary"), "the workspace policy keeps payloads 90 days");
    assert_eq!(d.ok(&["retention", "prune"]).trim(), "nothing to delete");
    let verify = d.run(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
}
