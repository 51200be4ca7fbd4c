-- When the wait (trigger or sensor) last asked the API about a batch, and when it will ask next: the
-- night page shows both while a night waits. NULL next_poll_at: the wait has stopped polling it.
ALTER TABLE nightshift.batches ADD COLUMN IF NOT EXISTS last_polled_at timestamptz;
ALTER TABLE nightshift.batches ADD COLUMN IF NOT EXISTS next_poll_at timestamptz;
