//! [`export_store!`]: `ExportStore` for both stores.

/// Implements `ExportStore` for `$Store`, in a module `export` next to the invocation.
macro_rules! export_store {
    ($Store:ident) => {
        /// `ExportStore` for the store of this module's parent.
        mod export {
            use std::str::FromStr;

            use async_trait::async_trait;
            use serde_json::{Value, json};
            use steward_auth::Role;
            use steward_engine::Timestamp;
            use steward_store::{
                ApiToken, AuditEvent, Counts, Error, ExportStore, Import, ImportReport, ImportRows,
                NewAuditEvent, Result, Row, SessionInfo, Table,
            };

            use super::$Store as Store;
            use crate::accounts::{self as accounts_sql, limit, normal_email};
            use crate::backend::{Backend, Tx};
            use crate::error::{db, to_json};
            use crate::export::{self as sql, Val};
            use crate::rows::RowExt as _;

            type Query<'q> = sqlx::query::Query<
                'q,
                <Store as Backend>::Db,
                <<Store as Backend>::Db as sqlx::Database>::Arguments,
            >;

            /// Binds `vals` in order after what `query` has bound.
            fn bind(mut query: Query<'_>, vals: Vec<Val>) -> Query<'_> {
                for v in vals {
                    query = match v {
                        Val::Text(s) => query.bind(s),
                        Val::Int(i) => query.bind(i),
                    };
                }
                query
            }

            #[async_trait]
            impl ExportStore for Store {
                async fn export_page(
                    &self,
                    workspace: &str,
                    table: Table,
                    after: Option<&Row>,
                    n: usize,
                ) -> Result<Vec<Row>> {
                    let read = sql::read(table);
                    let cursor = sql::cursor(table, read.key, after)?;
                    let query = bind(sqlx::query(read.page).bind(workspace), cursor).bind(limit(n));
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(|r| sql::export_row(r, table.columns())).collect()
                }

                async fn export_counts(&self, workspace: &str) -> Result<Counts> {
                    let mut counts = Counts::new();
                    for table in Table::ALL {
                        let query = sqlx::query(sql::read(*table).count).bind(workspace);
                        let row = query.fetch_one(self.reader()).await.map_err(db)?;
                        counts.insert(table.name().to_owned(), u64::try_from(row.int("n")?).unwrap_or(0));
                    }
                    Ok(counts)
                }

                async fn import_workspace(
                    &self,
                    import: &Import,
                    rows: &mut dyn ImportRows,
                ) -> Result<ImportReport> {
                    let mut tx = self.write().await?;
                    let mut importer = Importer::new(import);
                    while let Some((table, row)) = rows.next_row().await? {
                        importer.row(&mut tx, table, &row).await?;
                    }
                    importer.finish(&mut tx).await?;
                    tx.commit().await.map_err(db)?;
                    Ok(importer.report)
                }

                async fn sessions_of(&self, user: &str) -> Result<Vec<SessionInfo>> {
                    let query = sqlx::query(sql::SESSIONS_OF).bind(user);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter()
                        .map(|r| {
                            Ok(SessionInfo {
                                created_at: Timestamp(r.int("created_at")?),
                                expires_at: Timestamp(r.int("expires_at")?),
                            })
                        })
                        .collect()
                }

                async fn tokens_of(&self, user: &str) -> Result<Vec<ApiToken>> {
                    let query = sqlx::query(sql::TOKENS_OF).bind(user);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(accounts_sql::token).collect()
                }

                async fn audit_by(&self, user: &str, after_seq: i64, n: usize) -> Result<Vec<AuditEvent>> {
                    let query = sqlx::query(sql::AUDIT_BY)
                        .bind(format!("user:{user}"))
                        .bind(user)
                        .bind(after_seq)
                        .bind(limit(n));
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(accounts_sql::audit_event).collect()
                }
            }

            /// One import in progress, inside its transaction.
            struct Importer<'a> {
                import: &'a Import,
                report: ImportReport,
                /// The table of the previous row: tables must come in `Table::ALL` order.
                table: Option<Table>,
                /// (child, parent) runs, linked once every run is in.
                parents: Vec<(String, String)>,
                /// The audit chain's last entry (seq, hash) once this import has read it.
                head: Option<(i64, String)>,
            }

            impl<'a> Importer<'a> {
                fn new(import: &'a Import) -> Self {
                    Self { import, report: ImportReport::default(), table: None, parents: Vec::new(), head: None }
                }

                fn workspace(&self) -> Val {
                    Val::Text(Some(self.import.workspace.clone()))
                }

                /// Refuses rows out of order, and anything before the workspace's one row.
                fn check_order(&mut self, table: Table) -> Result<()> {
                    let ok = match self.table {
                        None => table == Table::Workspaces,
                        Some(Table::Workspaces) => table != Table::Workspaces,
                        Some(previous) => previous <= table,
                    };
                    if !ok {
                        return Err(Error::Invalid(format!(
                            "rows of {} are out of order: an export holds one workspace row first, \
                             then the tables in the documented order",
                            table.name()
                        )));
                    }
                    self.table = Some(table);
                    Ok(())
                }

                async fn row(&mut self, tx: &mut Tx<Store>, table: Table, row: &Row) -> Result<()> {
                    self.check_order(table)?;
                    let mut vals = sql::values(table, row)?;
                    let written = match table {
                        Table::Workspaces => return self.create_workspace(tx, vals).await,
                        Table::Members => return self.member(tx, row).await,
                        Table::AuditLog => return self.audit_entry(tx, row).await,
                        Table::RunEvents => {
                            vals.push(self.workspace());
                            insert(tx, sql::INSERT_RUN_EVENT, vals, table).await?
                        }
                        Table::RunSignals => {
                            vals[sql::position(table, "workspace_id")] = self.workspace();
                            vals.remove(sql::position(table, "id"));
                            insert(tx, sql::INSERT_RUN_SIGNAL, vals, table).await?
                        }
                        _ => {
                            vals[sql::position(table, "workspace_id")] = self.workspace();
                            let statement = self.prepare(table, &mut vals)?;
                            insert(tx, statement, vals, table).await?
                        }
                    };
                    if written == 0 {
                        return Err(Error::Invalid(format!(
                            "a {} row refers to a row that is not in this export",
                            table.name()
                        )));
                    }
                    self.count(table);
                    Ok(())
                }

                fn count(&mut self, table: Table) {
                    *self.report.imported.entry(table.name().to_owned()).or_default() += 1;
                }

                /// The statement for a row of a table keyed by its first column, and what
                /// changes in it on the way in.
                fn prepare(&mut self, table: Table, vals: &mut Vec<Val>) -> Result<&'static str> {
                    let id = match &vals[0] {
                        Val::Text(Some(id)) => id.clone(),
                        _ => return Err(Error::Invalid(format!("a {} row has no id", table.name()))),
                    };
                    let active = |vals: &[Val], col| vals[sql::position(table, col)] == Val::Int(None);
                    Ok(match table {
                        Table::Policies => sql::INSERT_POLICY,
                        Table::Flows => sql::INSERT_FLOW,
                        Table::FlowVersions => sql::INSERT_FLOW_VERSION,
                        Table::Schedules => sql::INSERT_SCHEDULE,
                        Table::AgentVersions => sql::INSERT_AGENT_VERSION,
                        Table::AgentUsage => sql::INSERT_AGENT_USAGE,
                        Table::AgentThreads => sql::INSERT_AGENT_THREAD,
                        Table::AgentThreadMessages => sql::INSERT_AGENT_THREAD_MESSAGE,
                        Table::Runs => {
                            let parent = sql::position(table, "parent_run_id");
                            if let Val::Text(Some(p)) = std::mem::replace(&mut vals[parent], Val::Text(None)) {
                                self.parents.push((id, p));
                            }
                            sql::INSERT_RUN
                        }
                        Table::Webhooks => {
                            if active(vals, "revoked_at") {
                                self.report.revoked_webhooks.push(id);
                            }
                            sql::revoke_at(vals, table, self.import.now);
                            vals.push(Val::Text(Some(fresh_digest()?)));
                            sql::INSERT_WEBHOOK
                        }
                        Table::Connections => {
                            if active(vals, "revoked_at") && active(vals, "deleted_at") {
                                let name = match &vals[sql::position(table, "name")] {
                                    Val::Text(Some(n)) => n.clone(),
                                    _ => id,
                                };
                                self.report.connections_to_rotate.push(name);
                            }
                            sql::revoke_at(vals, table, self.import.now);
                            sql::INSERT_CONNECTION
                        }
                        other => unreachable!("{} has its own import", other.name()),
                    })
                }

                async fn create_workspace(&mut self, tx: &mut Tx<Store>, mut vals: Vec<Val>) -> Result<()> {
                    vals[0] = self.workspace();
                    vals[3] = Val::Int(None);
                    let ws = &self.import.workspace;
                    bind(sqlx::query(sql::INSERT_WORKSPACE), vals).execute(&mut **tx).await.map_err(|e| {
                        match db(e) {
                            Error::Conflict(_) => Error::Conflict(format!(
                                "workspace `{ws}` exists in this database (perhaps deleted): \
                                 import under another name with --workspace"
                            )),
                            other => other,
                        }
                    })?;
                    self.count(Table::Workspaces);
                    Ok(())
                }

                /// Adds a member whose account exists here (by id, else by e-mail address);
                /// reports and skips the others.
                async fn member(&mut self, tx: &mut Tx<Store>, row: &Row) -> Result<()> {
                    let table = Table::Members;
                    sql::values(table, row)?;
                    let field = |col| sql::text(table, row, col)?.ok_or_else(|| missing(table, col));
                    let (user, email, role) = (field("user_id")?, field("email")?, field("role")?);
                    let role = Role::from_str(&role).map_err(|e| Error::Invalid(format!("members.role: {e}")))?;
                    let created_at = sql::int(table, row, "created_at")?.unwrap_or(self.import.now.0);
                    let by_id = sqlx::query(sql::USER_BY_ID).bind(&user);
                    let mut found = by_id.fetch_optional(&mut **tx).await.map_err(db)?;
                    if found.is_none() {
                        let by_email = sqlx::query(sql::USER_BY_EMAIL).bind(normal_email(&email));
                        found = by_email.fetch_optional(&mut **tx).await.map_err(db)?;
                    }
                    let Some(found) = found else {
                        self.report.skipped_members.push(email);
                        return Ok(());
                    };
                    let insert = sqlx::query(sql::INSERT_MEMBER)
                        .bind(&self.import.workspace)
                        .bind(found.text("id")?)
                        .bind(role.as_str())
                        .bind(created_at);
                    insert.execute(&mut **tx).await.map_err(db)?;
                    self.count(table);
                    Ok(())
                }

                /// Appends an exported entry to this database's chain as a new entry: same
                /// actor, action, object and source, written now, with the original's time,
                /// sequence number, workspace and hash kept in its details.
                async fn audit_entry(&mut self, tx: &mut Tx<Store>, row: &Row) -> Result<()> {
                    let table = Table::AuditLog;
                    sql::values(table, row)?;
                    let text = |col| sql::text(table, row, col);
                    let required = |col| text(col)?.ok_or_else(|| missing(table, col));
                    let original = text("details")?.unwrap_or_default();
                    let original = serde_json::from_str(&original).unwrap_or(Value::String(original));
                    let details = json!({
                        "imported": {
                            "seq": sql::int(table, row, "seq")?,
                            "at": sql::int(table, row, "at")?,
                            "workspace": text("workspace_id")?,
                            "hash": text("hash")?,
                        },
                        "details": original,
                    });
                    let event = NewAuditEvent {
                        workspace: Some(self.import.workspace.clone()),
                        actor: required("actor")?,
                        action: required("action")?,
                        object_type: required("object_type")?,
                        object_id: text("object_id")?,
                        source: text("source")?,
                        details,
                        now: self.import.now,
                    };
                    self.chain(tx, event).await?;
                    self.count(table);
                    Ok(())
                }

                /// Links `e` after the chain's head. PostgreSQL: under the audit table's
                /// lock, taken at the first entry and held until the import commits.
                async fn chain(&mut self, tx: &mut Tx<Store>, e: NewAuditEvent) -> Result<()> {
                    let (prev_seq, prev_hash) = match self.head.take() {
                        Some(head) => head,
                        None => head(tx).await?,
                    };
                    let details_text = to_json(&e.details, "audit details")?;
                    let seq = prev_seq + 1;
                    let hash = steward_store::chain_hash(
                        &prev_hash,
                        seq,
                        e.now,
                        e.workspace.as_deref(),
                        &e.actor,
                        &e.action,
                        &e.object_type,
                        e.object_id.as_deref(),
                        e.source.as_deref(),
                        &details_text,
                    );
                    sqlx::query(accounts_sql::INSERT_AUDIT)
                        .bind(seq)
                        .bind(e.now.0)
                        .bind(&e.workspace)
                        .bind(&e.actor)
                        .bind(&e.action)
                        .bind(&e.object_type)
                        .bind(&e.object_id)
                        .bind(&e.source)
                        .bind(&details_text)
                        .bind(&prev_hash)
                        .bind(&hash)
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                    self.head = Some((seq, hash));
                    Ok(())
                }

                /// Links child runs to their parents and records the import.
                async fn finish(&mut self, tx: &mut Tx<Store>) -> Result<()> {
                    if self.table.is_none() {
                        return Err(Error::Invalid("the export holds no workspace row".into()));
                    }
                    for (child, parent) in std::mem::take(&mut self.parents) {
                        let query = sqlx::query(sql::SET_PARENT)
                            .bind(&child)
                            .bind(&parent)
                            .bind(&self.import.workspace);
                        if query.execute(&mut **tx).await.map_err(db)?.rows_affected() == 0 {
                            return Err(Error::Invalid(format!(
                                "run {child} names a parent run that is not in this export"
                            )));
                        }
                    }
                    let mut details = self.import.details.clone();
                    if let Value::Object(map) = &mut details {
                        map.insert("imported".into(), json!(self.report.imported));
                        map.insert("skipped_members".into(), json!(self.report.skipped_members.len()));
                    }
                    let event = NewAuditEvent {
                        workspace: Some(self.import.workspace.clone()),
                        actor: self.import.actor.clone(),
                        action: "workspace.imported".into(),
                        object_type: "workspace".into(),
                        object_id: Some(self.import.workspace.clone()),
                        source: None,
                        details,
                        now: self.import.now,
                    };
                    self.chain(tx, event).await
                }
            }

            /// The chain's last entry, after taking the audit lock where writers need one.
            async fn head(tx: &mut Tx<Store>) -> Result<(i64, String)> {
                if <Store as Backend>::ROW_LOCKS {
                    sqlx::query(accounts_sql::LOCK_AUDIT).execute(&mut **tx).await.map_err(db)?;
                }
                let head = sqlx::query(accounts_sql::AUDIT_HEAD).fetch_optional(&mut **tx).await.map_err(db)?;
                match head {
                    Some(r) => Ok((r.int("seq")?, r.text("hash")?)),
                    None => Ok((0, steward_store::GENESIS.to_owned())),
                }
            }

            /// Inserts one row; the number of rows written (0 when a row it refers to is not
            /// in the workspace).
            async fn insert(tx: &mut Tx<Store>, statement: &'static str, vals: Vec<Val>, table: Table) -> Result<u64> {
                let done = bind(sqlx::query(statement), vals).execute(&mut **tx).await;
                let done = done.map_err(|e| match db(e) {
                    Error::Conflict(_) => Error::Conflict(format!(
                        "a {} row with the same id exists in this database (ids are kept on import, \
                         so a database holds one copy of an export)",
                        table.name()
                    )),
                    other => other,
                })?;
                Ok(done.rows_affected())
            }

            /// The digest of a new random URL path that is never shown: an imported webhook
            /// cannot be called.
            fn fresh_digest() -> Result<String> {
                let token = steward_auth::token::Token::generate(steward_auth::token::Kind::Webhook)
                    .map_err(|e| Error::Backend(format!("no randomness: {e}")))?;
                Ok(token.digest())
            }

            fn missing(table: Table, col: &str) -> Error {
                Error::Invalid(format!("a {} row has no `{col}`", table.name()))
            }
        }
    };
}

pub(crate) use export_store;
