-- Proving which batches are this deployment's own. Batches are visible to the whole workspace,
-- so a listed batch of the right size in the right window may be another team's: it is only
-- adopted, recorded as a duplicate or cancelled once proven ours (see nightshift.batch.ownership).

-- The create call's answer, written the moment it arrives and before anything else can fail:
-- a retry that finds one here adopts that batch (its own answer is the proof), and never creates
-- again. No uniqueness on the id: a failure to record it must not stop it being remembered.
CREATE TABLE IF NOT EXISTS nightshift.create_answers (
    answer_pk          bigserial   PRIMARY KEY,
    batch_pk           bigint      NOT NULL REFERENCES nightshift.batches (batch_pk),
    backend_batch_id   text        NOT NULL,
    answered_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS create_answers_batch ON nightshift.create_answers (batch_pk);

-- A listed batch that may be one of ours that no answer named (a create call that crashed or
-- timed out and went through anyway). Unproven while it runs (the API shows no custom_ids before
-- a batch ends); once ended, its results' custom_ids decide: 'ours' (exactly the intent's) or
-- 'not_ours'. Nothing unproven is ever adopted or cancelled.
CREATE TABLE IF NOT EXISTS nightshift.suspect_batches (
    backend_batch_id   text        NOT NULL,
    batch_pk           bigint      NOT NULL REFERENCES nightshift.batches (batch_pk),
    found_at           timestamptz NOT NULL DEFAULT now(),
    verdict            text        NOT NULL DEFAULT 'unproven' CHECK (verdict IN ('unproven', 'ours', 'not_ours')),
    settled_at         timestamptz,
    PRIMARY KEY (backend_batch_id, batch_pk)
);

-- Who cancelled a batch, so its unprocessed requests end in the right state: 'deadline' (they
-- fail deadline_exceeded) or 'killed' (the task was killed; a retry resubmits them).
ALTER TABLE nightshift.batches ADD COLUMN IF NOT EXISTS cancel_reason text
    CHECK (cancel_reason IN ('deadline', 'killed'));
-- What a proven duplicate of one of our batches was billed (its results are never landed).
ALTER TABLE nightshift.batches ADD COLUMN IF NOT EXISTS billed_usd numeric;
