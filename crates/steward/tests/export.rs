//! `steward export` and `steward import` with the real binary, on SQLite and PostgreSQL: a
//! round trip compared table by table, the CSV and SQL formats loaded by real tools, secrets
//! kept out of every format, clear refusals, and one person's data.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use steward_engine::Timestamp;
use steward_store::{NewAuditEvent, Schedule, ServerStore, Webhook};

const BIN: &str = env!("CARGO_BIN_EXE_steward");
const WS: &str = "default";
const TABLES: &[&str] = &[
    "workspaces",
    "workspace_policies",
    "members",
    "flows",
    "flow_versions",
    "runs",
    "run_events",
    "run_signals",
    "webhooks",
    "schedules",
    "connections",
    "agent_versions",
    "agent_usage",
    "agent_threads",
    "agent_thread_messages",
    "audit_log",
];
/// A flow whose source has commas, quotes and line breaks, for the CSV quoting.
const GATE: &str = "name: gate\ndescription: \"waits, then says \\\"done\\\"\"\nsteps:\n  - id: ok\n    approval: { message: 'go?' }\n";

/// A database the binary works on: a data directory, or a PostgreSQL database.
struct Db {
    dir: tempfile::TempDir,
    url: Option<String>,
}

impl Db {
    fn sqlite() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), url: None }
    }

    async fn postgres() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), url: Some(steward_testkit::fresh_pg_database().await) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(self.path("data")).env_remove("STEWARD_DATABASE_URL");
        c.env_remove("STEWARD_WORKSPACE");
        if let Some(url) = &self.url {
            c.arg("--database-url").arg(url);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs a command that must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; its standard error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    }

    /// An account that owns `workspace` (created if missing).
    fn create_user(&self, email: &str, workspace: &str) {
        let mut child = self
            .cmd()
            .args(["admin", "create-user", "--email", email, "--workspace", workspace, "--password-stdin"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"correct horse battery\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    async fn store(&self) -> Arc<dyn ServerStore> {
        let target = match &self.url {
            Some(url) => url.clone(),
            None => self.path("data/steward.db").to_string_lossy().into_owned(),
        };
        steward_store_sql::open(&target).await.unwrap()
    }
}

/// Secrets the fixture stores, which no export may contain.
struct Canaries {
    connection: String,
    webhook: String,
    path_digest: String,
}

/// A workspace with flows, a parent and a child run, a cancelled run (a signal), a member,
/// a webhook, a schedule, a connection, agents with usage, a chat thread and audit entries.
async fn populate(db: &Db) -> Canaries {
    db.create_user("ada@example.com", WS);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/invoice-total.yaml");
    let input = r#"{"lines": [{"qty": 2, "price": 9.5}], "region": "EU"}"#;
    db.ok(&["run", examples.to_str().unwrap(), "--input", input]);
    std::fs::write(db.path("gate.yaml"), GATE).unwrap();
    let gate = db.ok(&["run", "--detach", db.path("gate.yaml").to_str().unwrap()]);
    db.ok(&["runs", "cancel", gate.trim()]);

    let store = db.store().await;
    let now = Timestamp(1_700_000_000_000);
    let canaries = Canaries {
        connection: format!("canary-export-{}", uuid::Uuid::now_v7()),
        webhook: format!("canary-webhook-{}", uuid::Uuid::now_v7()),
        path_digest: format!("canary-digest-{}", uuid::Uuid::now_v7()),
    };
    let connection = steward_testkit::connection(WS, "github", canaries.connection.clone(), now);
    store.create_connection(&connection).await.unwrap();
    let webhook = Webhook {
        id: uuid::Uuid::now_v7().to_string(),
        workspace_id: WS.into(),
        flow_name: "gate".into(),
        path_digest: canaries.path_digest.clone(),
        scheme: "github".into(),
        signing_secret: Some(canaries.webhook.clone()),
        mode: "async".into(),
        sync_timeout_ms: 10_000,
        created_by: "user:1".into(),
        created_at: now,
        revoked_at: None,
    };
    store.create_webhook(&webhook).await.unwrap();
    let schedule = Schedule {
        id: uuid::Uuid::now_v7().to_string(),
        workspace_id: WS.into(),
        flow_name: "gate".into(),
        cron: "0 9 * * *".into(),
        timezone: "Europe/Berlin".into(),
        catch_up: "skip".into(),
        inputs: json!({ "note": "a, \"quoted\"\nvalue" }),
        next_fire_at: Some(now),
        created_by: "user:1".into(),
        created_at: now,
    };
    store.create_schedule(&schedule).await.unwrap();
    let policy = steward_store::PolicySettings {
        payload_days: Some(30),
        audit_days: Some(400),
        transcript_days: Some(60),
        egress_hosts: Some(vec!["api.example.com".into()]),
        ..Default::default()
    };
    store.set_policy(WS, &policy, "user:1", now).await.unwrap();
    store
        .save_agent(WS, "triage", "name: triage\ninstructions: \"Sort, then say \\\"done\\\"\"\n", "d1", now)
        .await
        .unwrap();
    store.save_agent(WS, "triage", "name: triage\ninstructions: Sort.\n", "d2", now).await.unwrap();
    // A deleted agent keeps its deletion through an export and an import.
    store.save_agent(WS, "retired", "name: retired\ninstructions: Rest.\n", "d3", now).await.unwrap();
    assert!(store.delete_agent(WS, "retired", now).await.unwrap());
    let usage = steward_store::UsageDelta {
        workspace: WS.into(),
        day: "2023-11-14".into(),
        agent: "triage".into(),
        input_tokens: 120,
        output_tokens: 40,
        cost_micros: 95,
        model_calls: 2,
        tool_calls: 1,
    };
    store.add_usage(&usage).await.unwrap();
    store.add_usage(&steward_store::UsageDelta { day: "2023-11-15".into(), ..usage }).await.unwrap();
    let thread = store.create_thread(WS, "triage", "Where is my order?", now).await.unwrap();
    store.add_message(WS, &thread.id, "Where is my order, \"#42\"?\nThanks", "run-1", now).await.unwrap();
    store.add_message(WS, &thread.id, "And the invoice?", "run-2", now).await.unwrap();
    canaries
}

fn read_jsonl(dir: &Path, table: &str) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(dir.join(format!("{table}.jsonl"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

fn without(rows: &[Map<String, Value>], cols: &[&str]) -> Vec<Map<String, Value>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .filter(|(k, _)| !cols.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect()
}

/// Exports `db`, imports into `target` (which has the same person under another id), exports
/// again and compares table by table; the documented differences are checked as such.
async fn round_trip(db: &Db, target: &Db) {
    let canaries = populate(db).await;
    let before = db.path("before");
    db.ok(&["export", "--format", "json", "--out", before.to_str().unwrap()]);
    target.create_user("ada@example.com", "elsewhere");
    let report: Value =
        serde_json::from_str(&target.ok(&["import", "--in", before.to_str().unwrap()])).unwrap();
    assert_eq!(report["skipped_members"], json!([]), "matched by e-mail");
    assert_eq!(report["connections_to_rotate"], json!(["github"]));
    assert_eq!(report["revoked_webhooks"].as_array().unwrap().len(), 1);
    let err = target.fails(&["import", "--in", before.to_str().unwrap()]);
    assert!(err.contains("workspace `default` exists"), "{err}");
    // Ids are kept, so a database holds one copy of an export, whatever its name.
    let err = target.fails(&["--workspace", "copy", "import", "--in", before.to_str().unwrap()]);
    assert!(err.contains("same id exists") && err.contains("nothing was written"), "{err}");

    let after = target.path("after");
    target.ok(&["export", "--out", after.to_str().unwrap()]);
    for table in [
        "workspaces",
        "workspace_policies",
        "flows",
        "flow_versions",
        "runs",
        "run_events",
        "schedules",
        "agent_versions",
        "agent_usage",
        "agent_threads",
        "agent_thread_messages",
    ] {
        let rows = read_jsonl(&before, table);
        assert!(!rows.is_empty(), "{table} has rows to compare");
        assert_eq!(rows, read_jsonl(&after, table), "{table}");
    }
    let runs = read_jsonl(&after, "runs");
    assert!(runs.iter().any(|r| r["parent_run_id"].is_string()), "the child run keeps its parent");
    let agents = read_jsonl(&after, "agent_versions");
    assert!(agents.iter().any(|a| a["name"] == "retired" && a["deleted_at"].is_i64()), "{agents:?}");

    let member = |rows: Vec<Map<String, Value>>| without(&rows, &["user_id", "created_at"]);
    assert_eq!(member(read_jsonl(&before, "members")), member(read_jsonl(&after, "members")));
    assert_eq!(
        without(&read_jsonl(&before, "run_signals"), &["id"]),
        without(&read_jsonl(&after, "run_signals"), &["id"])
    );
    assert_eq!(read_jsonl(&before, "run_signals").len(), 2, "the child's result and the cancel");
    for table in ["webhooks", "connections"] {
        let (b, a) = (read_jsonl(&before, table), read_jsonl(&after, table));
        assert_eq!(without(&b, &["revoked_at"]), without(&a, &["revoked_at"]), "{table}");
        assert!(b.iter().all(|r| r["revoked_at"].is_null()) && a.iter().all(|r| r["revoked_at"].is_i64()));
    }
    check_audit(&read_jsonl(&before, "audit_log"), &read_jsonl(&after, "audit_log"));
    let verified = target.run(&["audit", "verify"]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));

    // Rotating gives an imported connection its secret back and un-revokes it.
    let store = target.store().await;
    let rotated = store.rotate_connection(WS, "github", "sealed-again", Timestamp(1)).await.unwrap();
    assert!(rotated.revoked_at.is_none());
    for dir in [&before, &after] {
        assert_secrets_absent(dir, &canaries);
    }
}

/// Each original entry is appended as a new entry carrying the original's sequence number,
/// time and hash; then one `workspace.imported` entry, then the second export's own entry.
fn check_audit(before: &[Map<String, Value>], after: &[Map<String, Value>]) {
    assert!(before.len() >= 2, "{before:?}");
    assert_eq!(after.len(), before.len() + 2);
    for (b, a) in before.iter().zip(after) {
        for col in ["actor", "action", "object_type", "object_id", "source"] {
            assert_eq!(a[col], b[col], "{col}");
        }
        let details: Value = serde_json::from_str(a["details"].as_str().unwrap()).unwrap();
        assert_eq!(details["imported"]["hash"], b["hash"]);
        assert_eq!(details["imported"]["seq"], b["seq"]);
        assert_eq!(details["imported"]["at"], b["at"]);
        let original: Value = serde_json::from_str(b["details"].as_str().unwrap()).unwrap();
        assert_eq!(details["details"], original);
        assert_ne!(a["hash"], b["hash"], "a new link of this database's chain");
    }
    assert_eq!(after[before.len()]["action"], "workspace.imported");
    assert_eq!(after[before.len() + 1]["action"], "workspace.exported");
}

fn assert_secrets_absent(dir: &Path, canaries: &Canaries) {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&canaries.connection), "a connection secret in {}", dir.display());
        assert!(!text.contains(&canaries.webhook), "a webhook signing secret in {}", dir.display());
        assert!(!text.contains(&canaries.path_digest), "a webhook path digest in {}", dir.display());
        files += 1;
    }
    assert!(files >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_round_trip_on_sqlite() {
    round_trip(&Db::sqlite(), &Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_round_trip_on_postgres() {
    round_trip(&Db::postgres().await, &Db::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_format_contains_a_secret() {
    let db = Db::sqlite();
    let canaries = populate(&db).await;
    let store = db.store().await;
    assert_eq!(store.connection(WS, "github").await.unwrap().sealed, canaries.connection, "stored");
    for format in ["json", "csv", "sql"] {
        let out = db.path(format);
        db.ok(&["export", "--format", format, "--out", out.to_str().unwrap()]);
        assert_secrets_absent(&out, &canaries);
    }
}

/// Row counts per table of a JSON export, with `audit_extra` more audit entries (each export
/// adds one).
fn counts(json: &Path, audit_extra: u64) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = serde_json::from_value(manifest(json)["counts"].clone()).unwrap();
    *counts.get_mut("audit_log").unwrap() += audit_extra;
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_has_headers_counts_and_rfc4180_quoting() {
    let db = Db::sqlite();
    populate(&db).await;
    let (json, csv_dir) = (db.path("json"), db.path("csv"));
    db.ok(&["export", "--out", json.to_str().unwrap()]);
    db.ok(&["export", "--format", "csv", "--out", csv_dir.to_str().unwrap()]);
    let expected = counts(&json, 1);
    for table in TABLES {
        let mut reader = csv::Reader::from_path(csv_dir.join(format!("{table}.csv"))).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert!(header.len() >= 4, "{table}: {header:?}");
        if let Some(row) = read_jsonl(&json, table).first() {
            assert_eq!(header, row.keys().cloned().collect::<Vec<_>>(), "{table}");
        }
        assert_eq!(reader.records().count() as u64, expected[*table], "{table}");
    }
    let raw = std::fs::read_to_string(csv_dir.join("flow_versions.csv")).unwrap();
    assert!(raw.contains("\"\"done\\\"\"") && raw.contains("\r\n"), "quotes doubled, CRLF: {raw}");
    let mut reader = csv::Reader::from_path(csv_dir.join("flow_versions.csv")).unwrap();
    let source = reader.headers().unwrap().iter().position(|h| h == "source").unwrap();
    let sources: Vec<String> = reader.records().map(|r| r.unwrap()[source].to_owned()).collect();
    assert!(sources.iter().any(|s| s == GATE), "commas, quotes and line breaks survive: {sources:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_loads_into_sqlite3_and_psql() {
    let db = Db::sqlite();
    populate(&db).await;
    let (json, sql) = (db.path("json"), db.path("sql"));
    db.ok(&["export", "--out", json.to_str().unwrap()]);
    db.ok(&["export", "--format", "sql", "--out", sql.to_str().unwrap()]);
    let file = sql.join("workspace.sql");
    let expected = counts(&json, 1);

    let lite = db.path("loaded.db");
    let load =
        Command::new("sqlite3").arg(&lite).stdin(std::fs::File::open(&file).unwrap()).output().unwrap();
    assert!(load.status.success() && load.stderr.is_empty(), "{}", String::from_utf8_lossy(&load.stderr));
    let url = steward_testkit::fresh_pg_database().await;
    let load = Command::new("psql")
        .args([url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
    for table in TABLES {
        let query = format!("SELECT COUNT(*) FROM \"{table}\"");
        let lite_count = Command::new("sqlite3").arg(&lite).arg(&query).output().unwrap();
        let pg_count = Command::new("psql").args([url.as_str(), "-tAc", &query]).output().unwrap();
        for (tool, out) in [("sqlite3", lite_count), ("psql", pg_count)] {
            let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(u64::MAX);
            assert_eq!(n, expected[*table], "{table} in {tool}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let source = Command::new("sqlite3")
        .arg(&lite)
        .arg("SELECT source FROM flow_versions WHERE source LIKE 'name: gate%'")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&source.stdout), format!("{GATE}\n"), "text comes back as it was");
}

#[test]
fn imports_refuse_what_is_not_an_export() {
    let db = Db::sqlite();
    let empty = db.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = db.fails(&["import", "--in", empty.to_str().unwrap()]);
    assert!(err.contains("manifest.json is missing"), "{err}");

    std::fs::write(empty.join("manifest.json"), r#"{"format": "steward-export-v9"}"#).unwrap();
    let err = db.fails(&["import", "--in", empty.to_str().unwrap()]);
    assert!(err.contains("unknown format `steward-export-v9`"), "{err}");

    let manifest = json!({
        "format": "steward-export-v1",
        "workspace": { "id": "ghost", "name": "ghost" },
        "exported_at": 1,
        "counts": { "workspaces": 1 },
    });
    std::fs::write(empty.join("manifest.json"), manifest.to_string()).unwrap();
    let err = db.fails(&["import", "--in", empty.to_str().unwrap()]);
    assert!(err.contains("workspaces.jsonl") && err.contains("incomplete"), "{err}");

    let err = db.fails(&["export", "--workspace", "nope", "--out", db.path("x").to_str().unwrap()]);
    assert!(err.contains("no workspace `nope`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_export_holds_their_actions_and_nobody_elses() {
    let db = Db::sqlite();
    db.create_user("ada@example.com", WS);
    db.create_user("bob@example.com", WS);
    let store = db.store().await;
    let ada = store.user_for_login("ada@example.com").await.unwrap().unwrap().0;
    let bob = store.user_for_login("bob@example.com").await.unwrap().unwrap().0;
    for (user, action) in [(&ada, "flow.applied"), (&bob, "run.cancelled")] {
        let event = NewAuditEvent {
            workspace: Some(WS.into()),
            actor: format!("user:{}", user.id),
            action: action.into(),
            object_type: "flow".into(),
            object_id: Some("hello".into()),
            source: None,
            details: json!({}),
            now: Timestamp(1),
        };
        store.append_audit(event).await.unwrap();
    }
    let out = db.path("ada.json");
    db.ok(&["admin", "export-user", "--email", "ada@example.com", "--out", out.to_str().unwrap()]);
    let text = std::fs::read_to_string(&out).unwrap();
    let data: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(data["account"]["email"], "ada@example.com");
    assert_eq!(data["memberships"][0]["role"], "owner");
    let actions: Vec<&str> =
        data["audit"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["flow.applied"]);
    assert!(!text.contains(&bob.id) && !text.contains("bob@") && !text.contains("argon2"), "{text}");
    let err =
        db.fails(&["admin", "export-user", "--email", "ada@example.com", "--out", out.to_str().unwrap()]);
    assert!(err.contains("must not exist"), "{err}");
}
