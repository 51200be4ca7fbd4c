-- A batch belongs to a backend: the ledger no longer names one vendor's id column.
ALTER TABLE nightshift.batches RENAME COLUMN anthropic_batch_id TO backend_batch_id;
ALTER TABLE nightshift.batches ADD COLUMN IF NOT EXISTS backend text NOT NULL DEFAULT 'anthropic';
