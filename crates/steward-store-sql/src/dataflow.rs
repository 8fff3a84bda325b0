//! SQL of data-flow receipts: the `data_sent` events of a workspace's runs in a period.

use steward_store::{Result, SentRecord};

use crate::rows::RowExt;

pub(crate) const DATA_SENT: &str = "SELECT e.run_id, r.flow_name, e.seq, e.at, e.data \
     FROM run_events e JOIN runs r ON r.id = e.run_id \
     WHERE e.kind = 'data_sent' AND r.workspace_id = $1 AND e.at >= $2 AND e.at < $3 \
     ORDER BY e.at, e.run_id, e.seq";

pub(crate) fn sent_record(row: &impl RowExt) -> Result<SentRecord> {
    Ok(SentRecord {
        run_id: row.text("run_id")?,
        flow_name: row.text("flow_name")?,
        entry: crate::rows::entry(row)?,
    })
}
