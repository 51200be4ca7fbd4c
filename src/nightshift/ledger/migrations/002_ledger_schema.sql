-- Nightshift's own ledger, beside the destination tables so that a destination write and
-- its ledger update commit in one transaction. One row per run, per batch, per request.

CREATE SCHEMA IF NOT EXISTS nightshift;

CREATE TABLE IF NOT EXISTS nightshift.runs (
    run_pk               bigserial   PRIMARY KEY,
    workload             text        NOT NULL,
    dag_id               text        NOT NULL,
    airflow_run_id       text        NOT NULL,
    mode                 text        NOT NULL DEFAULT 'queue',
    data_interval_start  timestamptz,
    data_interval_end    timestamptz,
    model                text        NOT NULL,
    prompt_version       text        NOT NULL,
    status               text        NOT NULL DEFAULT 'collecting'
                                     CHECK (status IN ('collecting', 'running', 'succeeded', 'failed', 'empty')),
    deadline_at          timestamptz NOT NULL,
    requests             integer     NOT NULL DEFAULT 0,
    succeeded            integer     NOT NULL DEFAULT 0,
    failed               integer     NOT NULL DEFAULT 0,
    rounds               integer     NOT NULL DEFAULT 0,
    message              text,
    details              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    finished_at          timestamptz,
    UNIQUE (dag_id, airflow_run_id)
);
CREATE INDEX IF NOT EXISTS runs_workload_created ON nightshift.runs (workload, created_at DESC);

-- A batch row is written (status 'intent') and committed BEFORE the create call, and gets
-- its Anthropic id right after; a retried task finds it and re-attaches instead of paying twice.
CREATE TABLE IF NOT EXISTS nightshift.batches (
    batch_pk           bigserial   PRIMARY KEY,
    run_pk             bigint      NOT NULL REFERENCES nightshift.runs (run_pk),
    round              integer     NOT NULL,
    seq                integer     NOT NULL,
    anthropic_batch_id text        UNIQUE,
    status             text        NOT NULL DEFAULT 'intent'
                                   CHECK (status IN ('intent', 'submitted', 'ended', 'landed', 'abandoned')),
    request_count      integer     NOT NULL,
    body_bytes         bigint      NOT NULL,
    processing_status  text,
    request_counts     jsonb,
    intent_at          timestamptz NOT NULL DEFAULT now(),
    submitted_at       timestamptz,
    expires_at         timestamptz,
    ended_at           timestamptz,
    landed_at          timestamptz,
    recovery           text,
    UNIQUE (run_pk, round, seq)
);

-- Every request ends in exactly one terminal status: 'succeeded' (its row is in the
-- destination table) or 'failed' with error_type naming the reason.
CREATE TABLE IF NOT EXISTS nightshift.items (
    run_pk                      bigint      NOT NULL REFERENCES nightshift.runs (run_pk),
    custom_id                   text        NOT NULL CHECK (custom_id ~ '^[a-zA-Z0-9_-]{1,64}$'),
    source_key                  text        NOT NULL,
    request_id                  bigint,
    round                       integer     NOT NULL DEFAULT 0,
    batch_pk                    bigint      REFERENCES nightshift.batches (batch_pk),
    status                      text        NOT NULL DEFAULT 'pending'
                                            CHECK (status IN ('pending', 'submitted', 'retry', 'succeeded', 'failed')),
    error_type                  text,
    error_message               text,
    stop_reason                 text,
    input_tokens                integer,
    output_tokens               integer,
    cache_creation_input_tokens integer,
    cache_read_input_tokens     integer,
    cache_write_5m_tokens       integer,
    cache_write_1h_tokens       integer,
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_pk, custom_id)
);
CREATE INDEX IF NOT EXISTS items_batch ON nightshift.items (batch_pk);
CREATE INDEX IF NOT EXISTS items_run_status ON nightshift.items (run_pk, status);

-- Whether a queue row's source_key (text) is a valid value of the source key's type, without
-- raising: one row whose key is not a number must fail alone (invalid_input), not the whole
-- statement that joins the night's items to their source rows. Callers try a cheap pattern
-- first and only call this for keys it does not settle.
CREATE OR REPLACE FUNCTION nightshift.is_valid_input(value text, type regtype) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    EXECUTE format('SELECT %L::%s', value, type);
    RETURN true;
EXCEPTION WHEN data_exception THEN  -- 22xxx: invalid text representation, out of range, bad date, ...
    RETURN false;
END
$$;
