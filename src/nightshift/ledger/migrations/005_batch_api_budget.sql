-- One account-wide budget for calls to the Message Batches endpoints, shared by every task and
-- trigger that talks to them. The API limits those calls per minute across the whole account
-- (about 50 at the lowest tier), so a limit kept per process would be exceeded as soon as
-- hundreds of runs are in flight; the ledger database is the one place they all see.

CREATE TABLE IF NOT EXISTS nightshift.batch_api_calls (
    called_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS batch_api_calls_called_at ON nightshift.batch_api_calls (called_at);

-- Take one call from a sliding window of p_window_seconds that allows p_limit calls.
-- Returns 0 when the call may go now (and records it), or the seconds to wait before asking
-- again. The advisory lock makes count-and-record atomic across every caller.
CREATE OR REPLACE FUNCTION nightshift.take_batch_api_call(p_limit integer, p_window_seconds double precision)
RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
    v_window interval := make_interval(secs => p_window_seconds);
    v_now    timestamptz;
    v_used   integer;
    v_frees  timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('nightshift.batch_api_budget'));
    v_now := clock_timestamp();
    DELETE FROM nightshift.batch_api_calls WHERE called_at <= v_now - v_window;
    SELECT count(*) INTO v_used FROM nightshift.batch_api_calls;
    IF v_used < p_limit THEN
        INSERT INTO nightshift.batch_api_calls (called_at) VALUES (v_now);
        RETURN 0;
    END IF;
    -- Room appears when enough of the oldest calls have left the window.
    SELECT called_at INTO v_frees FROM nightshift.batch_api_calls
     ORDER BY called_at OFFSET v_used - p_limit LIMIT 1;
    RETURN greatest(0.001, extract(epoch FROM v_frees + v_window - v_now));
END
$$;
