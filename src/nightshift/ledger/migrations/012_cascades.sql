-- Cascades (#17): an item's model, and one record per attempt so no attempt's cost is overwritten.

-- The model an item is sent to (and, once landed, answered by): a cascade moves an escalated item to
-- the next model. NULL on rows older than this migration: the run's model.
ALTER TABLE nightshift.items ADD COLUMN IF NOT EXISTS model text;

-- One row per landed result of an item (each round it was answered in): the model it was sent to and
-- what the API billed for it. nightshift.items keeps the latest attempt only, so an attempt that was
-- escalated, asked for again (validation_retries) or retried after a later failure keeps its usage
-- and cost here. Written in the landing's own statement, so exactly once per result.
CREATE TABLE IF NOT EXISTS nightshift.attempts (
    run_pk                      bigint      NOT NULL,
    custom_id                   text        NOT NULL,
    round                       integer     NOT NULL,
    model                       text        NOT NULL,
    status                      text        NOT NULL,  -- the landed outcome: succeeded, retry or failed
    error_type                  text,                  -- escalated, invalid_output, expired...
    error_message               text,
    input_tokens                integer,
    output_tokens               integer,
    cache_write_5m_tokens       integer,
    cache_write_1h_tokens       integer,
    cache_read_input_tokens     integer,
    cost_usd                    numeric(18, 9),
    landed_at                   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_pk, custom_id, round),
    FOREIGN KEY (run_pk, custom_id) REFERENCES nightshift.items (run_pk, custom_id)
);

-- The night's cost by model (items answered, attempts, tokens, cost; every run closed since), and for a
-- cascade what the same night would have cost on its last model alone (NULL for a single model's night).
ALTER TABLE nightshift.runs
    ADD COLUMN IF NOT EXISTS cost_by_model        jsonb,
    ADD COLUMN IF NOT EXISTS last_model_alone_usd numeric(18, 9);
