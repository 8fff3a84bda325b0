//! [`account_store!`]: `AccountStore` and `AuditStore` for both stores.

/// Implements `AccountStore` and `AuditStore` for `$Store`, in a module `accounts` next to the
/// invocation.
macro_rules! account_store {
    ($Store:ident) => {
        /// `AccountStore` and `AuditStore` for the store of this module's parent.
        mod accounts {
            use async_trait::async_trait;
            use steward_auth::Role;
            use steward_engine::Timestamp;
            use std::collections::BTreeMap;

            use serde_json::json;
            use steward_store::{
                AccountDeletion, AccountStore, ApiToken, AuditEvent, AuditFilter, AuditStore, Deleter,
                DeletionReceipt, Error, Invitation, Member, NewAuditEvent, NewUser, QueueDepth, Result,
                Session, StatsStore, TableCount, User, Workspace,
            };

            use super::$Store as Store;
            use crate::accounts::{self as sql, limit, normal_email};
            use crate::backend::{Backend, Tx};
            use crate::error::{db, to_json};
            use crate::rows::RowExt as _;

            #[async_trait]
            impl AccountStore for Store {
                async fn create_user(&self, user: NewUser) -> Result<User> {
                    let email = normal_email(&user.email);
                    let query = sqlx::query(sql::INSERT_USER)
                        .bind(&user.id)
                        .bind(&email)
                        .bind(&user.name)
                        .bind(&user.password_hash)
                        .bind(user.now.0);
                    let mut tx = self.write().await?;
                    query.execute(&mut *tx).await.map_err(|e| match db(e) {
                        Error::Conflict(_) => {
                            Error::Conflict("an account with this e-mail address exists".into())
                        }
                        other => other,
                    })?;
                    tx.commit().await.map_err(db)?;
                    Ok(User { id: user.id, email, name: user.name, created_at: user.now })
                }

                async fn user(&self, id: &str) -> Result<User> {
                    let row =
                        sqlx::query(sql::USER).bind(id).fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|r| sql::user(&r)).transpose()?.ok_or_else(|| Error::NotFound("user".into()))
                }

                async fn user_for_login(&self, email: &str) -> Result<Option<(User, String)>> {
                    let query = sqlx::query(sql::USER_FOR_LOGIN).bind(normal_email(email));
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|r| Ok((sql::user(&r)?, r.text("password_hash")?))).transpose()
                }

                async fn count_users(&self) -> Result<u64> {
                    let row = sqlx::query(sql::COUNT_USERS).fetch_one(self.reader()).await.map_err(db)?;
                    Ok(u64::try_from(row.int("n")?).unwrap_or(0))
                }

                async fn create_workspace(
                    &self,
                    id: &str,
                    name: &str,
                    owner: &str,
                    now: Timestamp,
                ) -> Result<Workspace> {
                    let mut tx = self.write().await?;
                    let insert = sqlx::query(sql::INSERT_WORKSPACE).bind(id).bind(name).bind(now.0);
                    insert.execute(&mut *tx).await.map_err(|e| match db(e) {
                        Error::Conflict(_) => Error::Conflict(format!("the workspace id `{id}` is taken")),
                        other => other,
                    })?;
                    let member =
                        sqlx::query(sql::UPSERT_MEMBER).bind(id).bind(owner).bind("owner").bind(now.0);
                    member.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    let (id, name) = (id.to_owned(), name.to_owned());
                    Ok(Workspace { id, name, created_at: now, deleted_at: None })
                }

                async fn workspace(&self, id: &str) -> Result<Workspace> {
                    let row = sqlx::query(sql::WORKSPACE)
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await
                        .map_err(db)?;
                    row.map(|r| sql::workspace(&r))
                        .transpose()?
                        .ok_or_else(|| Error::NotFound("workspace".into()))
                }

                async fn workspaces_of(&self, user: &str) -> Result<Vec<(Workspace, Role)>> {
                    let rows = sqlx::query(sql::WORKSPACES_OF)
                        .bind(user)
                        .fetch_all(self.reader())
                        .await
                        .map_err(db)?;
                    rows.iter().map(|r| Ok((sql::workspace(r)?, sql::role(&r.text("role")?)?))).collect()
                }

                async fn deleted_workspaces_of(&self, user: &str) -> Result<Vec<(Workspace, Role)>> {
                    let query = sqlx::query(sql::DELETED_WORKSPACES_OF).bind(user);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(|r| Ok((sql::workspace(r)?, sql::role(&r.text("role")?)?))).collect()
                }

                async fn set_workspace_deleted(
                    &self,
                    id: &str,
                    deleted: bool,
                    now: Timestamp,
                ) -> Result<Workspace> {
                    let mut tx = self.write().await?;
                    if deleted {
                        // First, in id order: the lock that orders concurrent deletions.
                        keep_a_workspace(&mut tx, id).await?;
                    }
                    let mut w = any_workspace(&mut tx, id).await?;
                    let conflict = |m: &str| Err(Error::Conflict(m.to_owned()));
                    let expired =
                        |at: Timestamp| now.0.saturating_sub(at.0) >= steward_store::RESTORE_WINDOW_MS;
                    match (deleted, w.deleted_at) {
                        (true, Some(_)) => return Err(Error::NotFound("workspace".into())),
                        (false, None) => return conflict("there is nothing to restore: it is not deleted"),
                        (false, Some(at)) if expired(at) => {
                            return conflict(
                                "it was deleted more than 30 days ago and can no longer be restored",
                            );
                        }
                        _ => {}
                    }
                    w.deleted_at = deleted.then_some(now);
                    let update =
                        sqlx::query(sql::SET_WORKSPACE_DELETED).bind(id).bind(w.deleted_at.map(|t| t.0));
                    update.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)?;
                    Ok(w)
                }

                async fn delete_user(
                    &self,
                    user: &str,
                    by: &Deleter,
                    now: Timestamp,
                ) -> Result<AccountDeletion> {
                    let mut tx = self.write().await?;
                    let query = sqlx::query(sql::USER_EMAIL).bind(user);
                    let row = query.fetch_optional(&mut *tx).await.map_err(db)?;
                    let email = row.ok_or_else(|| Error::NotFound("user".into()))?.text("email")?;
                    let workspaces_deleted = check_memberships(&mut tx, user).await?;
                    for id in &workspaces_deleted {
                        let update = sqlx::query(sql::SET_WORKSPACE_DELETED).bind(id).bind(now.0);
                        update.execute(&mut *tx).await.map_err(db)?;
                    }
                    let deletion = delete_rows(&mut tx, user, &email, now, workspaces_deleted).await?;
                    record_deletion(&mut tx, user, by, &deletion).await?;
                    tx.commit().await.map_err(db)?;
                    scrub_log(self).await;
                    Ok(deletion)
                }

                async fn role(&self, workspace: &str, user: &str) -> Result<Option<Role>> {
                    let query = sqlx::query(sql::ROLE).bind(workspace).bind(user);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|r| sql::role(&r.text("role")?)).transpose()
                }

                async fn members(&self, workspace: &str) -> Result<Vec<Member>> {
                    let rows = sqlx::query(sql::MEMBERS)
                        .bind(workspace)
                        .fetch_all(self.reader())
                        .await
                        .map_err(db)?;
                    rows.iter().map(sql::member).collect()
                }

                async fn set_member(
                    &self,
                    workspace: &str,
                    user: &str,
                    role: Role,
                    now: Timestamp,
                ) -> Result<()> {
                    let mut tx = self.write().await?;
                    if role != Role::Owner {
                        keep_an_owner(&mut tx, workspace, user).await?;
                    }
                    let query = sqlx::query(sql::UPSERT_MEMBER)
                        .bind(workspace)
                        .bind(user)
                        .bind(role.as_str())
                        .bind(now.0);
                    query.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)
                }

                async fn remove_member(&self, workspace: &str, user: &str, now: Timestamp) -> Result<()> {
                    let mut tx = self.write().await?;
                    keep_an_owner(&mut tx, workspace, user).await?;
                    let deleted = sqlx::query(sql::DELETE_MEMBER)
                        .bind(workspace)
                        .bind(user)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?
                        .rows_affected();
                    if deleted == 0 {
                        return Err(Error::NotFound("member".into()));
                    }
                    let revoke =
                        sqlx::query(sql::REVOKE_MEMBER_TOKENS).bind(workspace).bind(user).bind(now.0);
                    revoke.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)
                }

                async fn create_invitation(&self, i: &Invitation) -> Result<()> {
                    let query = sqlx::query(sql::INSERT_INVITATION)
                        .bind(&i.id)
                        .bind(&i.digest)
                        .bind(&i.workspace_id)
                        .bind(normal_email(&i.email))
                        .bind(i.role.as_str())
                        .bind(&i.invited_by)
                        .bind(i.created_at.0)
                        .bind(i.expires_at.0);
                    let mut tx = self.write().await?;
                    query.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)
                }

                async fn invitations(&self, workspace: &str, now: Timestamp) -> Result<Vec<Invitation>> {
                    let query = sqlx::query(sql::OPEN_INVITATIONS).bind(workspace).bind(now.0);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::invitation).collect()
                }

                async fn open_invitation(&self, digest: &str, now: Timestamp) -> Result<Option<Invitation>> {
                    let query = sqlx::query(sql::OPEN_INVITATION).bind(digest).bind(now.0);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|r| sql::invitation(&r)).transpose()
                }

                async fn accept_invitation(
                    &self,
                    digest: &str,
                    user: &User,
                    now: Timestamp,
                ) -> Result<Invitation> {
                    let mut tx = self.write().await?;
                    let query = sqlx::query(sql::TAKE_INVITATION).bind(digest).bind(now.0).bind(&user.id);
                    let row = query.fetch_optional(&mut *tx).await.map_err(db)?;
                    let invitation = row
                        .map(|r| sql::invitation(&r))
                        .transpose()?
                        .filter(|i| i.email == normal_email(&user.email))
                        .ok_or_else(|| Error::NotFound("invitation".into()))?;
                    let existing = sqlx::query(sql::ROLE).bind(&invitation.workspace_id).bind(&user.id);
                    if existing.fetch_optional(&mut *tx).await.map_err(db)?.is_none() {
                        let member = sqlx::query(sql::UPSERT_MEMBER)
                            .bind(&invitation.workspace_id)
                            .bind(&user.id)
                            .bind(invitation.role.as_str())
                            .bind(now.0);
                        member.execute(&mut *tx).await.map_err(db)?;
                    }
                    tx.commit().await.map_err(db)?;
                    Ok(invitation)
                }

                async fn revoke_invitation(&self, workspace: &str, id: &str, now: Timestamp) -> Result<()> {
                    let mut tx = self.write().await?;
                    let query = sqlx::query(sql::REVOKE_INVITATION).bind(workspace).bind(id).bind(now.0);
                    if query.execute(&mut *tx).await.map_err(db)?.rows_affected() == 0 {
                        return Err(Error::NotFound("invitation".into()));
                    }
                    tx.commit().await.map_err(db)
                }

                async fn create_session(&self, s: &Session) -> Result<()> {
                    let query = sqlx::query(sql::INSERT_SESSION)
                        .bind(&s.digest)
                        .bind(&s.user_id)
                        .bind(&s.csrf)
                        .bind(s.created_at.0)
                        .bind(s.expires_at.0);
                    let mut tx = self.write().await?;
                    query.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)
                }

                async fn session(&self, digest: &str, now: Timestamp) -> Result<Option<Session>> {
                    let query = sqlx::query(sql::SESSION).bind(digest).bind(now.0);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|r| sql::session(&r)).transpose()
                }

                async fn delete_session(&self, digest: &str) -> Result<()> {
                    let mut tx = self.write().await?;
                    sqlx::query(sql::DELETE_SESSION).bind(digest).execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)
                }

                async fn delete_sessions_of(&self, user: &str) -> Result<u64> {
                    let mut tx = self.write().await?;
                    let query = sqlx::query(sql::DELETE_SESSIONS_OF).bind(user);
                    let n = query.execute(&mut *tx).await.map_err(db)?.rows_affected();
                    tx.commit().await.map_err(db)?;
                    Ok(n)
                }

                async fn create_token(&self, t: &ApiToken) -> Result<()> {
                    let names = t.permissions.names();
                    let query = sqlx::query(sql::INSERT_TOKEN)
                        .bind(&t.id)
                        .bind(&t.digest)
                        .bind(&t.workspace_id)
                        .bind(&t.user_id)
                        .bind(&t.name)
                        .bind(to_json(&names, "token permissions")?)
                        .bind(t.created_at.0)
                        .bind(t.expires_at.map(|e| e.0));
                    let mut tx = self.write().await?;
                    query.execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)
                }

                async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>> {
                    let query = sqlx::query(sql::TOKEN_BY_DIGEST).bind(digest);
                    let row = query.fetch_optional(self.reader()).await.map_err(db)?;
                    row.map(|r| sql::token(&r)).transpose()
                }

                async fn tokens(&self, workspace: &str, user: Option<&str>) -> Result<Vec<ApiToken>> {
                    let query = sqlx::query(sql::TOKENS).bind(workspace).bind(user);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::token).collect()
                }

                async fn revoke_token(&self, workspace: &str, id: &str, now: Timestamp) -> Result<ApiToken> {
                    let mut tx = self.write().await?;
                    let query = sqlx::query(sql::REVOKE_TOKEN).bind(workspace).bind(id).bind(now.0);
                    let row = query.fetch_optional(&mut *tx).await.map_err(db)?;
                    let token = row
                        .map(|r| sql::token(&r))
                        .transpose()?
                        .ok_or_else(|| Error::NotFound("token".into()))?;
                    tx.commit().await.map_err(db)?;
                    Ok(token)
                }

                async fn touch_token(&self, id: &str, now: Timestamp) -> Result<()> {
                    let mut tx = self.write().await?;
                    sqlx::query(sql::TOUCH_TOKEN).bind(id).bind(now.0).execute(&mut *tx).await.map_err(db)?;
                    tx.commit().await.map_err(db)
                }
            }

            /// Refuses a change that would leave `workspace` without an owner, if `user` is
            /// its only one.
            async fn keep_an_owner(tx: &mut Tx<Store>, workspace: &str, user: &str) -> Result<()> {
                let sql = if <Store as Backend>::ROW_LOCKS { sql::OWNERS_LOCKED } else { sql::OWNERS };
                let rows = sqlx::query(sql).bind(workspace).fetch_all(&mut **tx).await.map_err(db)?;
                let owners = rows.iter().map(|r| r.text("user_id")).collect::<Result<Vec<_>>>()?;
                if owners.len() == 1 && owners[0] == user {
                    return Err(Error::Conflict(
                        "a workspace needs an owner: make someone else owner first".into(),
                    ));
                }
                Ok(())
            }

            /// Refuses to delete `workspace` if it is the last one in use.
            async fn keep_a_workspace(tx: &mut Tx<Store>, workspace: &str) -> Result<()> {
                let sql = if <Store as Backend>::ROW_LOCKS {
                    sql::LIVE_WORKSPACES_LOCKED
                } else {
                    sql::LIVE_WORKSPACES
                };
                let rows = sqlx::query(sql).fetch_all(&mut **tx).await.map_err(db)?;
                let live = rows.iter().map(|r| r.text("id")).collect::<Result<Vec<_>>>()?;
                if live == [workspace] {
                    return Err(Error::Conflict(
                        "the server keeps one in use and this is the last: create another before deleting it"
                            .into(),
                    ));
                }
                Ok(())
            }

            /// A workspace whether deleted or not (locked on PostgreSQL).
            async fn any_workspace(tx: &mut Tx<Store>, id: &str) -> Result<Workspace> {
                let sql = if <Store as Backend>::ROW_LOCKS {
                    sql::ANY_WORKSPACE_LOCKED
                } else {
                    sql::ANY_WORKSPACE
                };
                let row = sqlx::query(sql).bind(id).fetch_optional(&mut **tx).await.map_err(db)?;
                let found = row.map(|r| sql::workspace(&r)).transpose()?;
                found.ok_or_else(|| Error::NotFound("workspace".into()))
            }

            /// Checks that deleting `user` leaves no workspace in use without an owner while it
            /// has members; returns the workspaces in use of which `user` is the only member,
            /// which go with the account.
            async fn check_memberships(tx: &mut Tx<Store>, user: &str) -> Result<Vec<String>> {
                if <Store as Backend>::ROW_LOCKS {
                    sqlx::query(sql::LOCK_MEMBERSHIPS_OF).bind(user).fetch_all(&mut **tx).await.map_err(db)?;
                }
                let query = sqlx::query(sql::MEMBERSHIPS_OF).bind(user);
                let rows = query.fetch_all(&mut **tx).await.map_err(db)?;
                let (mut stranded, mut alone) = (Vec::new(), Vec::new());
                for r in &rows {
                    if r.opt_int("deleted_at")?.is_some() {
                        continue;
                    }
                    let workspace = r.text("workspace_id")?;
                    if r.int("others")? == 0 {
                        alone.push(workspace);
                    } else if r.text("role")? == "owner" && r.int("other_owners")? == 0 {
                        stranded.push(workspace);
                    }
                }
                if !stranded.is_empty() {
                    return Err(Error::Conflict(format!(
                        "the account is the only owner of {}, which other people are members of: make one of \
                         them an owner there first (or remove them), then delete the account",
                        stranded.join(", ")
                    )));
                }
                Ok(alone)
            }

            /// Deletes the person's rows; the receipt counts them, in total and per workspace.
            async fn delete_rows(
                tx: &mut Tx<Store>,
                user: &str,
                email: &str,
                now: Timestamp,
                workspaces_deleted: Vec<String>,
            ) -> Result<AccountDeletion> {
                let mut per_workspace: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
                let mut totals = Vec::new();
                let deleted = |q: &'static str| sqlx::query(q).bind(user);
                let sessions = deleted(sql::DELETE_USER_SESSIONS).execute(&mut **tx).await.map_err(db)?;
                totals.push(("sessions", sessions.rows_affected()));
                for (table, query) in [
                    ("api_tokens", deleted(sql::DELETE_USER_TOKENS)),
                    ("memberships", deleted(sql::DELETE_USER_MEMBERSHIPS)),
                    ("invitations", deleted(sql::DELETE_USER_INVITATIONS).bind(email)),
                ] {
                    let rows = query.fetch_all(&mut **tx).await.map_err(db)?;
                    for r in &rows {
                        let counts = per_workspace.entry(r.text("workspace_id")?).or_default();
                        *counts.entry(table).or_default() += 1;
                    }
                    totals.push((table, rows.len() as u64));
                }
                let users = deleted(sql::DELETE_USER).execute(&mut **tx).await.map_err(db)?;
                totals.insert(0, ("users", users.rows_affected()));
                let receipt = |tables: Vec<(&str, u64)>| DeletionReceipt {
                    subject: format!("user:{user}"),
                    reason: "account deleted".into(),
                    at: now,
                    tables: tables
                        .into_iter()
                        .map(|(table, rows)| TableCount {
                            store: sql::store_kind::<<Store as Backend>::Db>().into(),
                            table: table.into(),
                            rows,
                        })
                        .collect(),
                };
                let per_workspace = per_workspace
                    .into_iter()
                    .map(|(ws, counts)| {
                        let tables = ["api_tokens", "memberships", "invitations"]
                            .map(|t| (t, counts.get(t).copied().unwrap_or(0)));
                        (ws, receipt(tables.to_vec()))
                    })
                    .collect();
                Ok(AccountDeletion { receipt: receipt(totals), per_workspace, workspaces_deleted })
            }

            /// Appends the deletion's audit entries inside its transaction: recorded if and only
            /// if it happened.
            async fn record_deletion(
                tx: &mut Tx<Store>,
                user: &str,
                by: &Deleter,
                deletion: &AccountDeletion,
            ) -> Result<()> {
                if <Store as Backend>::ROW_LOCKS {
                    sqlx::query(sql::LOCK_AUDIT).execute(&mut **tx).await.map_err(db)?;
                }
                let mut entries = vec![deletion.receipt.audit_event(None, &by.actor)];
                for (workspace, part) in &deletion.per_workspace {
                    entries.push(part.audit_event(Some(workspace), &by.actor));
                }
                for workspace in &deletion.workspaces_deleted {
                    entries.push(NewAuditEvent {
                        workspace: Some(workspace.clone()),
                        actor: by.actor.clone(),
                        action: "workspace.deleted".into(),
                        object_type: "workspace".into(),
                        object_id: Some(workspace.clone()),
                        source: None,
                        details: json!({ "reason": "its only member's account was deleted", "user": user }),
                        now: deletion.receipt.at,
                    });
                }
                for mut e in entries {
                    e.source = by.source.clone();
                    let details_text = to_json(&e.details, "audit details")?;
                    append_entry(tx, e, details_text).await?;
                }
                Ok(())
            }

            /// SQLite: pushes the deleted rows' old page images out of the write-ahead log (see
            /// [`sql::TRUNCATE_LOG`]). The deletion has committed; if readers keep the log busy
            /// past the busy timeout, the next checkpoint finishes the job, so failure is logged.
            async fn scrub_log(store: &Store) {
                if sql::store_kind::<<Store as Backend>::Db>() != "sqlite" {
                    return;
                }
                if let Err(e) = sqlx::query(sql::TRUNCATE_LOG).execute(store.reader()).await {
                    tracing::warn!(error = %e, "could not checkpoint the SQLite log after a deletion");
                }
            }

            #[async_trait]
            impl AuditStore for Store {
                /// Links one entry after the current head. Appenders take turns: SQLite has
                /// one writer; PostgreSQL takes the table's exclusive lock (reads go on).
                async fn append_audit(&self, e: NewAuditEvent) -> Result<AuditEvent> {
                    let details_text = to_json(&e.details, "audit details")?;
                    let mut tx = self.write().await?;
                    if <Store as Backend>::ROW_LOCKS {
                        sqlx::query(sql::LOCK_AUDIT).execute(&mut *tx).await.map_err(db)?;
                    }
                    let event = append_entry(&mut tx, e, details_text).await?;
                    tx.commit().await.map_err(db)?;
                    Ok(event)
                }

                async fn audit(&self, workspace: &str, f: &AuditFilter) -> Result<Vec<AuditEvent>> {
                    let query = sqlx::query(sql::AUDIT)
                        .bind(workspace)
                        .bind(&f.action)
                        .bind(f.before)
                        .bind(limit(f.limit));
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::audit_event).collect()
                }

                async fn audit_chain(&self, after_seq: i64, n: usize) -> Result<Vec<AuditEvent>> {
                    let query = sqlx::query(sql::AUDIT_CHAIN).bind(after_seq).bind(limit(n));
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::audit_event).collect()
                }
            }

            #[async_trait]
            impl StatsStore for Store {
                async fn queue_depth(&self, now: Timestamp) -> Result<QueueDepth> {
                    let row = sqlx::query(sql::QUEUE_DEPTH)
                        .bind(now.0)
                        .fetch_one(self.reader())
                        .await
                        .map_err(db)?;
                    let count = |col: &str| row.int(col).map(|n| u64::try_from(n).unwrap_or(0));
                    Ok(QueueDepth {
                        due: count("due")?,
                        running: count("running")?,
                        waiting: count("waiting")?,
                    })
                }
            }

            async fn append_entry(
                tx: &mut Tx<Store>,
                e: NewAuditEvent,
                details_text: String,
            ) -> Result<AuditEvent> {
                let head = sqlx::query(sql::AUDIT_HEAD).fetch_optional(&mut **tx).await.map_err(db)?;
                let (prev_seq, prev_hash) = match head {
                    Some(r) => (r.int("seq")?, r.text("hash")?),
                    None => (0, steward_store::GENESIS.to_owned()),
                };
                let mut event = AuditEvent {
                    seq: prev_seq + 1,
                    at: e.now,
                    workspace: e.workspace,
                    actor: e.actor,
                    action: e.action,
                    object_type: e.object_type,
                    object_id: e.object_id,
                    source: e.source,
                    details: e.details,
                    details_text,
                    prev_hash,
                    hash: String::new(),
                };
                event.hash = event.expected_hash(&event.prev_hash);
                sqlx::query(sql::INSERT_AUDIT)
                    .bind(event.seq)
                    .bind(event.at.0)
                    .bind(&event.workspace)
                    .bind(&event.actor)
                    .bind(&event.action)
                    .bind(&event.object_type)
                    .bind(&event.object_id)
                    .bind(&event.source)
                    .bind(&event.details_text)
                    .bind(&event.prev_hash)
                    .bind(&event.hash)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                Ok(event)
            }
        }
    };
}

pub(crate) use account_store;
