-- The request queue is Nightshift's: an installed deployment gets it (and the way to fill it) from
-- `nightshift db upgrade`. A database whose streaming path already had the table keeps its rows.

CREATE SCHEMA IF NOT EXISTS app;

CREATE TABLE IF NOT EXISTS app.llm_requests (
    request_id    bigserial   PRIMARY KEY,
    workload      text        NOT NULL,
    source_key    text        NOT NULL,
    status        text        NOT NULL DEFAULT 'pending'
                              CHECK (status IN ('pending', 'claimed', 'done', 'failed')),
    requested_at  timestamptz NOT NULL DEFAULT now(),
    claimed_by    text,
    claimed_at    timestamptz,
    completed_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    error         text
);
CREATE INDEX IF NOT EXISTS llm_requests_pending
    ON app.llm_requests (workload, request_id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS llm_requests_claimed_by
    ON app.llm_requests (claimed_by) WHERE claimed_by IS NOT NULL;

-- A key queued again while a request for it is still pending is the same piece of work. Raw
-- INSERTs can still make such duplicates: a run's claim answers one per key and records here which
-- request answered the others (they close with it).
ALTER TABLE app.llm_requests ADD COLUMN IF NOT EXISTS answered_by bigint;
CREATE INDEX IF NOT EXISTS llm_requests_pending_key
    ON app.llm_requests (workload, source_key) WHERE status = 'pending';

-- Queue work: one pending request per distinct key of `keys` that has none yet, in the keys' order.
-- Returns how many were queued (the rest were already pending). Enqueues of one workload take turns,
-- so two at once cannot both queue the same key.
CREATE OR REPLACE FUNCTION nightshift.enqueue(workload text, keys text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    queued integer;
BEGIN
    IF workload IS NULL OR workload !~ '^[a-z][a-z0-9_]*$' THEN
        RAISE EXCEPTION 'nightshift.enqueue: workload % is not a workload name (a-z, 0-9, _)',
            quote_nullable(workload)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF array_position(keys, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'nightshift.enqueue: key #% is NULL', array_position(keys, NULL)
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('nightshift.enqueue'), hashtext(workload));
    INSERT INTO app.llm_requests (workload, source_key)
    SELECT enqueue.workload, k.key
      FROM (SELECT key, min(n) AS first FROM unnest(keys) WITH ORDINALITY AS u (key, n) GROUP BY key) k
     WHERE NOT EXISTS (SELECT 1 FROM app.llm_requests q
                        WHERE q.workload = enqueue.workload AND q.source_key = k.key AND q.status = 'pending')
     ORDER BY k.first;
    GET DIAGNOSTICS queued = ROW_COUNT;
    RETURN queued;
END
$$;
