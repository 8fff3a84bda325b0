-- Data-flow receipts are read from the journal's `data_sent` events; a workspace's record of
-- processing reads them by time.
CREATE INDEX run_events_data_sent ON run_events (at) WHERE kind = 'data_sent';
