-- Model trials (#17): a sample of a workload's rows answered again on a candidate model, into the
-- trial table nightshift.trial_<workload> (created on a trial's first run, like the shadow table), and
-- the report that compares the candidate's answers with the current model's. A trial's run is a
-- nightshift.runs row of mode 'trial': its items are the sampled keys (no queue request).
ALTER TABLE nightshift.runs DROP CONSTRAINT IF EXISTS runs_mode_check;
ALTER TABLE nightshift.runs ADD CONSTRAINT runs_mode_check
    CHECK (mode IN ('queue', 'interval', 'shadow', 'trial'));

CREATE TABLE IF NOT EXISTS nightshift.model_trials (
    trial_pk        bigserial   PRIMARY KEY,
    workload        text        NOT NULL,
    current_model   text        NOT NULL,
    candidate_model text        NOT NULL,
    run_pk          bigint      NOT NULL UNIQUE REFERENCES nightshift.runs (run_pk),
    status          text        NOT NULL DEFAULT 'running'
                                CHECK (status IN ('running', 'reported', 'failed')),
    -- what was asked: sample size, the source-timestamp window, the seed (the sample is reproducible)
    params          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    sample_size     integer,              -- keys sampled (fewer than asked when fewer were eligible)
    keys_compared   integer,
    keys_agreeing   integer,
    agreement       numeric,
    agreement_low   numeric,              -- Wilson 95% interval
    agreement_high  numeric,
    report          jsonb,
    message         text,                 -- why a trial failed
    created_at      timestamptz NOT NULL DEFAULT now(),
    reported_at     timestamptz
);
CREATE INDEX IF NOT EXISTS model_trials_workload ON nightshift.model_trials (workload, created_at DESC);
