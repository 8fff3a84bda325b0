//! The master key for `serve` and `admin rotate-master-key`: `STEWARD_MASTER_KEY`, or the
//! file `master.key` in the data directory (another with `STEWARD_MASTER_KEY_FILE`), which
//! the first start creates.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use steward_store::ServerStore;
use steward_vault::{KeySource, Keyring, MASTER_KEY_ENV, MasterKey};
use zeroize::Zeroizing;

use crate::local::Location;

/// The variable naming another key file.
pub const KEY_FILE_ENV: &str = "STEWARD_MASTER_KEY_FILE";

fn key_file(location: &Location) -> PathBuf {
    std::env::var_os(KEY_FILE_ENV).map_or_else(|| location.data_dir.join("master.key"), PathBuf::from)
}

/// Where a rotation keeps the new key until every data key is re-wrapped with it.
fn next_file(file: &std::path::Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

/// The master key (made on first start) and a keyring that has checked every stored data key
/// against it: a wrong or missing key stops here with a clear message.
pub async fn open_keyring(location: &Location, store: Arc<dyn ServerStore>) -> anyhow::Result<Keyring> {
    let env = std::env::var(MASTER_KEY_ENV).ok().map(Zeroizing::new);
    let file = key_file(location);
    let (master, source) = MasterKey::load_or_create(env.as_deref().map(String::as_str), &file)?;
    if let KeySource::Created(path) = &source {
        eprintln!(
            "created a master key in {} (mode 0600). Back it up apart from the database: without it, \
             stored secrets cannot be read.",
            path.display()
        );
    }
    let keyring = Keyring::new(master, store);
    let workspaces = keyring.check().await.context("the master key does not fit this database")?;
    tracing::info!(master_key = %keyring.master_key_id(), workspaces, "master key checked");
    Ok(keyring)
}

/// How often a running process looks for a rotation of the master key done elsewhere.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Follows rotations of the master key (`steward admin rotate-master-key` run elsewhere)
/// until `stop`: the new key is read from the key file (or the variable) as soon as the
/// stored data keys name it, so servers and workers need no restart.
pub async fn follow_rotations(
    location: Location,
    keyring: Arc<Keyring>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = stop.changed() => return,
        }
        let load = || {
            let env = std::env::var(MASTER_KEY_ENV).ok().map(Zeroizing::new);
            MasterKey::load_or_create(env.as_deref().map(String::as_str), &key_file(&location))
                .map(|(k, _)| k)
        };
        match keyring.follow_rotation(load, super::runs::now()).await {
            Ok(Some(id)) => tracing::info!(master_key = %id, "now using the rotated master key"),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "the master key was rotated, but the new key cannot be loaded; restart with it")
            }
        }
    }
}

/// `steward admin rotate-master-key`: re-wraps every workspace's data key with a new master
/// key, then puts the new key in place. Servers keep the data keys they have unwrapped; restart
/// them (one at a time) to read the new key.
/// Returns the new key's id.
pub async fn rotate(
    location: &Location,
    store: Arc<dyn ServerStore>,
    new_key_stdin: bool,
) -> anyhow::Result<String> {
    let now = super::runs::now();
    let env = std::env::var(MASTER_KEY_ENV).ok().map(Zeroizing::new);
    let file = key_file(location);
    let next = next_file(&file);
    let (current, source) = MasterKey::load_or_create(env.as_deref().map(String::as_str), &file)?;
    let new = if new_key_stdin {
        let mut text = Zeroizing::new(String::new());
        std::io::stdin().read_to_string(&mut text).context("cannot read the new key from stdin")?;
        MasterKey::parse(&text)?
    } else if matches!(source, KeySource::Environment) {
        bail!("the master key comes from {MASTER_KEY_ENV}: give the new one with --new-key-stdin");
    } else if next.exists() {
        // An earlier rotation stopped halfway: finish it with the key it chose.
        MasterKey::load_or_create(None, &next)?.0
    } else {
        MasterKey::generate()?
    };
    let from_file = !matches!(source, KeySource::Environment);
    if from_file && !next.exists() {
        // Saved before any data key depends on it.
        steward_vault::write_key_file(&next, &new)?;
    }
    let rewrapped = Keyring::new(current, store.clone()).rotate(&new, now).await?;
    let check = Keyring::new(new.clone(), store).check().await?;
    if from_file {
        std::fs::rename(&next, &file).with_context(|| format!("cannot replace {}", file.display()))?;
        eprintln!(
            "re-wrapped {rewrapped} data keys ({check} workspaces) with master key {}, now in {}",
            new.id(),
            file.display()
        );
    } else {
        eprintln!(
            "re-wrapped {rewrapped} data keys ({check} workspaces); set {MASTER_KEY_ENV} to the new key ({}) \
             on every server",
            new.id()
        );
    }
    Ok(new.id().to_owned())
}
