-- What each request and each night cost, and what the same tokens would have cost on the
-- streaming path. Kept in the ledger so any night can be audited later, in SQL.

ALTER TABLE nightshift.items ADD COLUMN IF NOT EXISTS cost_usd numeric(18, 9);

ALTER TABLE nightshift.runs
    ADD COLUMN IF NOT EXISTS prices_as_of           date,
    ADD COLUMN IF NOT EXISTS prefix_tokens          integer,
    ADD COLUMN IF NOT EXISTS input_tokens           bigint,
    ADD COLUMN IF NOT EXISTS output_tokens          bigint,
    ADD COLUMN IF NOT EXISTS cache_write_tokens     bigint,
    ADD COLUMN IF NOT EXISTS cache_read_tokens      bigint,
    ADD COLUMN IF NOT EXISTS billed_failed          integer,
    ADD COLUMN IF NOT EXISTS warmup_cost_usd        numeric(18, 9) NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS cost_usd               numeric(18, 9),
    ADD COLUMN IF NOT EXISTS streaming_cached_usd   numeric(18, 9),
    ADD COLUMN IF NOT EXISTS streaming_uncached_usd numeric(18, 9);

-- One row per night: actual cost (batch rate, warm-up included) against the old path.
CREATE OR REPLACE VIEW nightshift.run_costs AS
SELECT run_pk, workload, created_at, status, requests, succeeded, failed, billed_failed, prefix_tokens,
       cost_usd, warmup_cost_usd, streaming_cached_usd, streaming_uncached_usd,
       streaming_uncached_usd - cost_usd                                          AS savings_usd,
       round(100 * (streaming_uncached_usd - cost_usd) / nullif(streaming_uncached_usd, 0), 2) AS savings_pct,
       round(cache_read_tokens::numeric / nullif(cache_read_tokens + cache_write_tokens, 0), 4) AS cache_hit_ratio,
       prices_as_of
  FROM nightshift.runs;
