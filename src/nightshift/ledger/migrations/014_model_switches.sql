-- The model a workload runs on when `nightshift switch --model` moved it off the model its file
-- declares: one row per switch (the latest row of a workload is in force), each with its evidence
-- (the trial that cleared the gate, its agreement and the interval's low end). from_model is the
-- file's model when the switch was made: once the file declares another model, the file wins.
-- A revert (back to the file's model) is a row too, with no trial.
CREATE TABLE IF NOT EXISTS nightshift.workload_models (
    switch_pk       bigserial   PRIMARY KEY,
    workload        text        NOT NULL,
    model           text        NOT NULL,
    from_model      text        NOT NULL,
    trial_pk        bigint,
    agreement       numeric,
    agreement_low   numeric,
    agreement_high  numeric,
    sample_size     integer,
    keys_compared   integer,
    prompt_version  text        NOT NULL,
    report          jsonb,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    changed_by      text        NOT NULL DEFAULT current_user,
    CHECK ((trial_pk IS NULL) = (model = from_model))
);
CREATE INDEX IF NOT EXISTS workload_models_latest ON nightshift.workload_models (workload, switch_pk DESC);
