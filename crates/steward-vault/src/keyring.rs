//! [`Keyring`]: the master key and the store together: each workspace's data key, created on
//! first use and kept unwrapped in memory, sealing and opening connection secrets, the startup
//! check and master key rotation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use steward_engine::Timestamp;
use steward_store::{Connection, VaultStore, WorkspaceKey};

use crate::{Binding, DataKey, Error, MasterKey, Result, Sealed, Secret, WrappedKey};

/// Seals and opens the secrets of every workspace with the process's master key.
pub struct Keyring {
    /// Replaced when a rotation done elsewhere is followed ([`Keyring::follow_rotation`]).
    master: RwLock<MasterKey>,
    store: Arc<dyn VaultStore>,
    keys: Mutex<HashMap<String, DataKey>>,
}

impl Keyring {
    pub fn new(master: MasterKey, store: Arc<dyn VaultStore>) -> Keyring {
        Keyring { master: RwLock::new(master), store, keys: Mutex::new(HashMap::new()) }
    }

    /// The id of the master key in use.
    pub fn master_key_id(&self) -> String {
        self.master().id().to_owned()
    }

    fn master(&self) -> MasterKey {
        self.master.read().unwrap_or_else(PoisonError::into_inner).clone()
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
                let fresh = DataKey::generate()?.wrap(&self.master(), workspace)?;
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

    /// Opens a value sealed with [`Keyring::seal`] for `name` (a connection, or another owner
    /// such as `webhook:<id>`) of `workspace`.
    pub async fn open_text(
        &self,
        workspace: &str,
        name: &str,
        sealed: &str,
        now: Timestamp,
    ) -> Result<Secret> {
        let key = self.data_key(workspace, now).await?;
        key.open(&Binding { workspace, connection: name }, &Sealed::parse(sealed)?)
    }

    /// The plaintext secret of a stored connection.
    pub async fn open(&self, connection: &Connection, now: Timestamp) -> Result<Secret> {
        let workspace = connection.workspace_id.as_str();
        let key = self.data_key(workspace, now).await?;
        key.open(&Binding { workspace, connection: &connection.name }, &Sealed::parse(&connection.sealed)?)
    }

    /// The connection `name` of `workspace` and its opened secret; `None` when the workspace has
    /// no such connection (deleted connections count as absent).
    pub async fn open_named(
        &self,
        workspace: &str,
        name: &str,
        now: Timestamp,
    ) -> Result<Option<(Connection, Secret)>> {
        let connection = match self.store.connection(workspace, name).await {
            Ok(c) if c.deleted_at.is_none() => c,
            Ok(_) | Err(steward_store::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(store(e)),
        };
        let secret = self.open(&connection, now).await?;
        Ok(Some((connection, secret)))
    }

    /// Every secret of the workspace's connections (revoked ones too: a revoked secret is still
    /// one to keep out of payloads), each with its connection's name, for redaction.
    pub async fn workspace_secrets(&self, workspace: &str, now: Timestamp) -> Result<Vec<(String, Secret)>> {
        let connections = self.store.connections(workspace, false).await.map_err(store)?;
        let mut out = Vec::with_capacity(connections.len());
        for c in &connections {
            let secret = self.open(c, now).await?;
            out.extend(crate::forms::secret_forms(c, secret).into_iter().map(|s| (c.name.clone(), s)));
        }
        Ok(out)
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
            let wrapped = WrappedKey::parse(&key.wrapped)?.rewrap(&self.master(), new, &key.workspace_id)?;
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

    /// Follows a rotation of the master key done by another process (`steward admin
    /// rotate-master-key`): when a stored data key names another master key than the one in
    /// use, `load` is asked for the current key; if it is the one the data keys now name, keys
    /// still wrapped with the old one (made here while the rotation ran) are re-wrapped with
    /// it, and it replaces the old one here. Returns the new key's id, or `None` when nothing
    /// changed. Running servers thus follow a rotation without a restart.
    pub async fn follow_rotation(
        &self,
        load: impl FnOnce() -> Result<MasterKey>,
        now: Timestamp,
    ) -> Result<Option<String>> {
        let current = self.master_key_id();
        let keys = self.store.workspace_keys().await.map_err(store)?;
        let Some(moved) = keys.iter().find(|k| k.master_key_id != current) else { return Ok(None) };
        let new = load()?;
        if new.id() != moved.master_key_id {
            return Err(Error::WrongMasterKey {
                workspace: moved.workspace_id.clone(),
                wrapped_with: moved.master_key_id.clone(),
                in_use: new.id().to_owned(),
            });
        }
        self.rotate(&new, now).await?;
        *self.master.write().unwrap_or_else(PoisonError::into_inner) = new.clone();
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(Some(new.id().to_owned()))
    }

    fn cached(&self, workspace: &str) -> Option<DataKey> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).get(workspace).cloned()
    }

    fn unwrap(&self, stored: &WorkspaceKey) -> Result<DataKey> {
        WrappedKey::parse(&stored.wrapped)?.unwrap_with(&self.master(), &stored.workspace_id)
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("master_key_id", &self.master_key_id()).finish_non_exhaustive()
    }
}

fn store(e: steward_store::Error) -> Error {
    Error::Store(e.to_string())
}
