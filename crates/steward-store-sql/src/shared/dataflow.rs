//! [`dataflow_store!`]: `DataFlowStore` for both stores.

/// Implements `DataFlowStore` for `$Store`, in a module `dataflow` next to the invocation.
macro_rules! dataflow_store {
    ($Store:ident) => {
        /// `DataFlowStore` for the store of this module's parent.
        mod dataflow {
            use async_trait::async_trait;
            use steward_engine::Timestamp;
            use steward_store::{DataFlowStore, Result, SentRecord};

            use super::$Store as Store;
            use crate::backend::Backend;
            use crate::dataflow as sql;
            use crate::error::db;

            #[async_trait]
            impl DataFlowStore for Store {
                async fn data_sent(
                    &self,
                    workspace: &str,
                    from: Timestamp,
                    to: Timestamp,
                ) -> Result<Vec<SentRecord>> {
                    let query = sqlx::query(sql::DATA_SENT).bind(workspace).bind(from.0).bind(to.0);
                    let rows = query.fetch_all(self.reader()).await.map_err(db)?;
                    rows.iter().map(sql::sent_record).collect()
                }
            }
        }
    };
}

pub(crate) use dataflow_store;
