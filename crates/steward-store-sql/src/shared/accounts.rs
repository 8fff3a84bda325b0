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
            use steward_store::{
                AccountStore, ApiToken, AuditEvent, AuditFilter, AuditStore, Error, Invitation, Member,
                NewAuditEvent, NewUser, QueueDepth, Result, Session, StatsStore, User, Workspace,
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
                    Ok(Workspace { id: id.to_owned(), name: name.to_owned(), created_at: now })
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
