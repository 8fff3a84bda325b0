//! The master key with the real binary: the first start creates it (mode 0600) and says so, a
//! key that does not fit the database stops `serve` before it listens, and `admin
//! rotate-master-key` re-wraps the data keys so that only the new key opens the secrets.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use steward_engine::Timestamp;
use steward_store::VaultStore;
use steward_vault::{Keyring, MasterKey, Secret};

const BIN: &str = env!("CARGO_BIN_EXE_steward");
const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn steward(data: &Path) -> Command {
    let mut c = steward_testkit::steward_command(BIN);
    c.arg("--data-dir")
        .arg(data)
        .env_remove("STEWARD_DATABASE_URL")
        .env_remove("STEWARD_MASTER_KEY")
        .env_remove("STEWARD_MASTER_KEY_FILE")
        .current_dir(data.parent().unwrap());
    c
}

async fn store(data: &Path) -> Arc<dyn VaultStore> {
    steward_store_sql::open(&data.join("steward.db").to_string_lossy()).await.unwrap()
}

fn key_in(data: &Path) -> MasterKey {
    MasterKey::parse(&std::fs::read_to_string(data.join("master.key")).unwrap()).unwrap()
}

/// `serve` until it listens or exits; returns its exit code (None: it was listening) and
/// what it printed.
fn try_serve(data: &Path) -> (Option<i32>, String) {
    use std::io::{BufRead, BufReader};
    let mut child =
        steward(data).args(["serve", "--bind", "127.0.0.1:0"]).stderr(Stdio::piped()).spawn().unwrap();
    let mut printed = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.starts_with("serving on ") {
            child.kill().unwrap();
            child.wait().unwrap();
            return (None, printed);
        }
    }
    (child.wait().unwrap().code(), printed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_makes_the_key_and_a_wrong_key_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, printed) = try_serve(&data);
    assert_eq!(code, None, "{printed}");
    assert!(printed.contains("created a master key"), "{printed}");
    let file = data.join("master.key");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let right = key_in(&data);

    // A secret stored under this key, then the key file replaced by another key.
    let store = store(&data).await;
    Keyring::new(right.clone(), store.clone())
        .seal("default", "github", &Secret::from("v"), NOW)
        .await
        .unwrap();
    let (code, printed) = try_serve(&data);
    assert_eq!(code, None, "the same key starts: {printed}");
    assert!(!printed.contains("created a master key"));
    std::fs::remove_file(&file).unwrap();
    let wrong = MasterKey::generate().unwrap();
    steward_vault::write_key_file(&file, &wrong).unwrap();
    let (code, printed) = try_serve(&data);
    assert_eq!(code, Some(1), "{printed}");
    assert!(printed.contains(right.id()) && printed.contains(wrong.id()), "names both keys: {printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_replaces_the_key_and_keeps_secrets_readable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, printed) = try_serve(&data);
    assert_eq!(code, None, "{printed}");
    let old = key_in(&data);
    let store = store(&data).await;
    let sealed = Keyring::new(old.clone(), store.clone())
        .seal("default", "github", &Secret::from("ghp_x"), NOW)
        .await
        .unwrap();
    let c = steward_testkit::connection("default", "github", sealed, NOW);
    store.create_connection(&c).await.unwrap();

    let out = steward(&data).args(["admin", "rotate-master-key"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let new = key_in(&data);
    assert_ne!(new.id(), old.id());
    assert!(said.contains("re-wrapped 1 data keys") && said.contains(new.id()), "{said}");
    assert!(!data.join("master.key.next").exists());
    assert_eq!(std::fs::metadata(data.join("master.key")).unwrap().permissions().mode() & 0o777, 0o600);

    let stored = store.connection("default", "github").await.unwrap();
    assert_eq!(Keyring::new(new, store.clone()).open(&stored, NOW).await.unwrap().expose(), b"ghp_x");
    assert!(Keyring::new(old, store).check().await.is_err());
    let (code, printed) = try_serve(&data);
    assert_eq!(code, None, "starts with the new key: {printed}");
}
