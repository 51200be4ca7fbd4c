-- A digest of the source row an interval (backfill) item was collected from (its key and the workload's
-- source columns): a later backfill of the interval skips a row that failed invalid_input at the same
-- prompt version unless the row's digest changed since. NULL for queue items.
ALTER TABLE nightshift.items ADD COLUMN IF NOT EXISTS source_digest text;
CREATE INDEX IF NOT EXISTS items_invalid_input_digest ON nightshift.items (source_key, source_digest)
    WHERE error_type = 'invalid_input';
