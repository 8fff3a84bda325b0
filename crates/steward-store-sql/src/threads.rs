//! SQL and row mapping for chat threads and their messages, shared by both backends (the
//! trait implementation is in [`crate::shared`]).

use steward_engine::Timestamp;
use steward_store::{Result, Thread, ThreadMessage};

use crate::rows::RowExt;

macro_rules! thread_cols {
    () => {
        "id, workspace_id, agent, title, created_at, updated_at"
    };
}

macro_rules! message_cols {
    () => {
        "thread_id, seq, workspace_id, content, run_id, created_at"
    };
}

pub(crate) const INSERT: &str =
    concat!("INSERT INTO agent_threads (", thread_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6)");
pub(crate) const BY_ID: &str =
    concat!("SELECT ", thread_cols!(), " FROM agent_threads WHERE workspace_id = $1 AND id = $2");
/// `$2`: an agent's name, or `''` for every agent.
pub(crate) const LIST: &str = concat!(
    "SELECT ",
    thread_cols!(),
    " FROM agent_threads WHERE workspace_id = $1 AND ($2 = '' OR agent = $2) \
     ORDER BY updated_at DESC, id DESC"
);
pub(crate) const DELETE_MESSAGES: &str =
    "DELETE FROM agent_thread_messages WHERE workspace_id = $1 AND thread_id = $2";
pub(crate) const DELETE: &str = "DELETE FROM agent_threads WHERE workspace_id = $1 AND id = $2";

/// Moves a thread's `updated_at` to `$3`. On PostgreSQL this also locks the thread's row until
/// the transaction ends, so concurrent appends to one thread take turns.
pub(crate) const TOUCH: &str = "UPDATE agent_threads SET updated_at = $3 WHERE workspace_id = $1 AND id = $2";
pub(crate) const NEXT_SEQ: &str =
    "SELECT COALESCE(MAX(seq), 0) + 1 AS seq FROM agent_thread_messages WHERE thread_id = $1";
pub(crate) const INSERT_MESSAGE: &str =
    concat!("INSERT INTO agent_thread_messages (", message_cols!(), ") VALUES ($1, $2, $3, $4, $5, $6)");
/// The thread (no row: not in the workspace) with its messages in order: one row with a null
/// `seq` when it has none. One statement, so one snapshot.
pub(crate) const MESSAGES: &str = "SELECT m.thread_id, m.seq, m.content, m.run_id, m.created_at \
     FROM agent_threads t LEFT JOIN agent_thread_messages m ON m.thread_id = t.id \
     WHERE t.workspace_id = $1 AND t.id = $2 ORDER BY m.seq";

/// Up to `$3` of the workspace's messages written before `$2`, in one statement.
pub(crate) const PRUNE_MESSAGES: &str = "DELETE FROM agent_thread_messages WHERE (thread_id, seq) IN \
     (SELECT thread_id, seq FROM agent_thread_messages WHERE workspace_id = $1 AND created_at < $2 \
     ORDER BY created_at LIMIT $3)";
/// The workspace's threads without messages and not active since `$2`: those retention
/// emptied (a thread just created, whose first message is on its way, is newer).
pub(crate) const PRUNE_EMPTY: &str = "DELETE FROM agent_threads WHERE workspace_id = $1 AND updated_at < $2 \
     AND NOT EXISTS (SELECT 1 FROM agent_thread_messages m WHERE m.thread_id = agent_threads.id)";

/// Messages per transaction when pruning, so other writers wait at most one batch.
pub(crate) const PRUNE_BATCH: i64 = 500;

pub(crate) fn thread(row: &impl RowExt) -> Result<Thread> {
    Ok(Thread {
        id: row.text("id")?,
        workspace: row.text("workspace_id")?,
        agent: row.text("agent")?,
        title: row.text("title")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

/// A row of [`MESSAGES`]: `None` for the row of a thread without messages.
pub(crate) fn message(row: &impl RowExt) -> Result<Option<ThreadMessage>> {
    let Some(seq) = row.opt_int("seq")? else { return Ok(None) };
    Ok(Some(ThreadMessage {
        thread_id: row.text("thread_id")?,
        seq,
        content: row.text("content")?,
        run_id: row.text("run_id")?,
        created_at: Timestamp(row.int("created_at")?),
    }))
}
