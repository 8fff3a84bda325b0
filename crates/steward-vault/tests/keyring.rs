//! The keyring over a real SQLite store: secrets are stored sealed (the canary never appears
//! in the database file's bytes), a wrong master key stops the startup check and names both
//! keys, and rotation keeps every secret readable under the new key only.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use steward_engine::Timestamp;
use steward_store::VaultStore;
use steward_vault::{Error, Keyring, MasterKey, Secret};

const CANARY: &str = "canary-3f9c1e-secret-value";
const NOW: Timestamp = Timestamp(1_800_000_000_000);

async fn store(dir: &std::path::Path) -> Arc<dyn VaultStore> {
    let path = dir.join("steward.db");
    steward_store_sql::open(&path.to_string_lossy()).await.unwrap()
}

async fn add(keyring: &Keyring, store: &Arc<dyn VaultStore>, workspace: &str, name: &str, value: &str) {
    let sealed = keyring.seal(workspace, name, &Secret::from(value), NOW).await.unwrap();
    let c = steward_testkit::connection(workspace, name, sealed, NOW);
    store.create_connection(&c).await.unwrap();
}

/// Every byte of the SQLite files in `dir` (database and log).
fn bytes_of(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

#[tokio::test]
async fn secrets_are_stored_sealed_and_open_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let keyring = Keyring::new(MasterKey::generate().unwrap(), store.clone());
    add(&keyring, &store, "acme", "github", CANARY).await;
    add(&keyring, &store, "other", "github", "another value").await;

    let stored = store.connection("acme", "github").await.unwrap();
    assert_eq!(keyring.open(&stored, NOW).await.unwrap().expose(), CANARY.as_bytes());
    let haystack = bytes_of(dir.path());
    assert!(
        !haystack.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
        "the canary is in the database files"
    );

    // A sealed value copied to another workspace's row does not open there.
    let mut moved = store.connection("other", "github").await.unwrap();
    moved.sealed = stored.sealed.clone();
    assert!(matches!(keyring.open(&moved, NOW).await, Err(Error::Tampered(_))));
    assert_eq!(keyring.check().await.unwrap(), 2);
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_at_startup_naming_both_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let right = MasterKey::generate().unwrap();
    let keyring = Keyring::new(right.clone(), store.clone());
    add(&keyring, &store, "acme", "github", CANARY).await;

    let wrong = MasterKey::generate().unwrap();
    let err = Keyring::new(wrong.clone(), store.clone()).check().await.unwrap_err().to_string();
    assert!(err.contains(right.id()) && err.contains(wrong.id()) && err.contains("acme"), "{err}");
    assert!(!err.contains(CANARY));
}

#[tokio::test]
async fn rotation_rewraps_every_key_and_can_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let (old, new) = (MasterKey::generate().unwrap(), MasterKey::generate().unwrap());
    let keyring = Keyring::new(old.clone(), store.clone());
    add(&keyring, &store, "acme", "github", CANARY).await;
    add(&keyring, &store, "other", "stripe", "sk_live_x").await;
    let sealed_before = store.connection("acme", "github").await.unwrap().sealed;

    assert_eq!(keyring.rotate(&new, NOW).await.unwrap(), 2);
    assert_eq!(keyring.rotate(&new, NOW).await.unwrap(), 0, "nothing left to re-wrap");
    assert_eq!(store.connection("acme", "github").await.unwrap().sealed, sealed_before, "secrets untouched");

    let after = Keyring::new(new, store.clone());
    assert_eq!(after.check().await.unwrap(), 2);
    let c = store.connection("other", "stripe").await.unwrap();
    assert_eq!(after.open(&c, NOW).await.unwrap().expose(), b"sk_live_x");
    assert!(Keyring::new(old, store).check().await.is_err(), "the old key no longer works");
}

#[tokio::test]
async fn a_running_keyring_follows_a_rotation_done_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let old = MasterKey::generate().unwrap();
    let server = Keyring::new(old.clone(), store.clone());
    add(&server, &store, "acme", "github", CANARY).await;
    assert_eq!(server.follow_rotation(|| unreachable!("nothing moved"), NOW).await.unwrap(), None);

    // Another process rotates; meanwhile the server makes a key for a new workspace with the
    // old master key, which the rotation did not see.
    let new = MasterKey::generate().unwrap();
    Keyring::new(old.clone(), store.clone()).rotate(&new, NOW).await.unwrap();
    add(&server, &store, "late", "slack", "late value").await;

    // A wrong key file is refused, naming the key the data keys need.
    let wrong = MasterKey::generate().unwrap();
    let err = server.follow_rotation(|| Ok(wrong.clone()), NOW).await.unwrap_err();
    assert!(err.to_string().contains(new.id()), "{err}");

    let followed = server.follow_rotation(|| Ok(new.clone()), NOW).await.unwrap();
    assert_eq!(followed.as_deref(), Some(new.id()));
    assert_eq!(server.master_key_id(), new.id());
    // Every data key, the late one included, now opens with the new key alone.
    let fresh = Keyring::new(new.clone(), store.clone());
    assert_eq!(fresh.check().await.unwrap(), 2);
    let late = store.connection("late", "slack").await.unwrap();
    assert_eq!(fresh.open(&late, NOW).await.unwrap().expose(), b"late value");
    assert!(Keyring::new(old, store.clone()).check().await.is_err(), "the old key is retired");
}
