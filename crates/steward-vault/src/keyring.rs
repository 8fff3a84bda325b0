//! [`Keyring`]: the master key and the store together: each workspace's data key, created on
//! first use and kept unwrapped in memory, sealing and opening connection secrets, the startup
//! check and master key rotation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use steward_engine::Timestamp;
use steward_store::{Connection, VaultStore, WorkspaceKey};

use crate::{Binding, DataKey, Error, MasterKey, Result, Sealed, Secret, WrappedKey};

/// Seals and opens the secrets of every workspace with the process's master key.
pub struct Keyring {
    master: MasterKey,
    store: Arc<dyn VaultStore>,
    keys: Mutex<HashMap<String, DataKey>>,
}

impl Keyring {
    pub fn new(master: MasterKey, store: Arc<dyn VaultStore>) -> Keyring {
        Keyring { master, store, keys: Mutex::new(HashMap::new()) }
    }

    /// The id of the master key in use.
    pub fn master_key_id(&self) -> &str {
        self.master.id()
    }

    /// Checks that every stored data key unwraps with the master key in use, so that a wrong
    /// or replaced key stops the server at startup rather than at the first secret. Returns
    /// how many workspaces have keys.
    pub async fn check(&self) -> Result<usize> {
        let keys = self.store.workspace_keys().await.map_err(store)?;
        for key in &keys {
            self.unwrap(key)?;
        }
        Ok(keys.len())
    }

    /// `workspace`'s data key, made and stored on first use.
    pub async fn data_key(&self, workspace: &str, now: Timestamp) -> Result<DataKey> {
        if let Some(key) = self.cached(workspace) {
            return Ok(key);
        }
        let stored = match self.store.workspace_key(workspace).await.map_err(store)? {
            Some(stored) => stored,
            None => {
                let fresh = DataKey::generate()?.wrap(&self.master, workspace)?;
                let new = WorkspaceKey {
                    workspace_id: workspace.to_owned(),
                    wrapped: fresh.to_text(),
                    master_key_id: fresh.master_key_id.clone(),
                    created_at: now,
                    rotated_at: None,
                };
                // Another process may have stored one first; the stored one is the key.
                self.store.put_workspace_key(&new).await.map_err(store)?
            }
        };
        let key = self.unwrap(&stored)?;
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).insert(workspace.to_owned(), key.clone());
        Ok(key)
    }

    /// Seals `value` for `connection` of `workspace`, in its stored text form.
    pub async fn seal(
        &self,
        workspace: &str,
        connection: &str,
        value: &Secret,
        now: Timestamp,
    ) -> Result<String> {
        let key = self.data_key(workspace, now).await?;
        Ok(key.seal(&Binding { workspace, connection }, value)?.to_text())
    }

    /// The plaintext secret of a stored connection.
    pub async fn open(&self, connection: &Connection, now: Timestamp) -> Result<Secret> {
        let workspace = connection.workspace_id.as_str();
        let key = self.data_key(workspace, now).await?;
        key.open(&Binding { workspace, connection: &connection.name }, &Sealed::parse(&connection.sealed)?)
    }

    /// Re-wraps every workspace's data key with `new`; secrets are untouched. Keys already
    /// wrapped with `new` are skipped, so an interrupted rotation can simply be run again.
    /// Returns how many keys were re-wrapped.
    pub async fn rotate(&self, new: &MasterKey, now: Timestamp) -> Result<usize> {
        let mut done = 0;
        for key in self.store.workspace_keys().await.map_err(store)? {
            if key.master_key_id == new.id() {
                continue;
            }
            let wrapped = WrappedKey::parse(&key.wrapped)?.rewrap(&self.master, new, &key.workspace_id)?;
            let rewrapped = WorkspaceKey {
                wrapped: wrapped.to_text(),
                master_key_id: wrapped.master_key_id.clone(),
                rotated_at: Some(now),
                ..key.clone()
            };
            if self.store.rewrap_workspace_key(&rewrapped, &key.master_key_id).await.map_err(store)? {
                done += 1;
            }
        }
        Ok(done)
    }

    fn cached(&self, workspace: &str) -> Option<DataKey> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).get(workspace).cloned()
    }

    fn unwrap(&self, stored: &WorkspaceKey) -> Result<DataKey> {
        WrappedKey::parse(&stored.wrapped)?.unwrap_with(&self.master, &stored.workspace_id)
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("master_key_id", &self.master.id()).finish_non_exhaustive()
    }
}

fn store(e: steward_store::Error) -> Error {
    Error::Store(e.to_string())
}
