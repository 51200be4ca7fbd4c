-- Migrating a workload from streaming to batch: its current mode, what the streaming path
-- spent (for a like-for-like cost comparison), and the parity reports that gate the switch.

CREATE TABLE IF NOT EXISTS nightshift.workload_modes (
    workload    text        PRIMARY KEY,
    mode        text        NOT NULL CHECK (mode IN ('shadow', 'batch')),
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  text        NOT NULL DEFAULT current_user,
    agreement   numeric,
    report      jsonb
);

CREATE TABLE IF NOT EXISTS nightshift.stream_usage (
    request_id                  bigint      PRIMARY KEY,
    workload                    text        NOT NULL,
    model                       text        NOT NULL,
    input_tokens                integer     NOT NULL,
    output_tokens               integer     NOT NULL,
    cache_write_tokens          integer     NOT NULL DEFAULT 0,
    cache_read_tokens           integer     NOT NULL DEFAULT 0,
    cost_usd                    numeric(18, 9) NOT NULL,
    created_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS stream_usage_workload ON nightshift.stream_usage (workload, created_at);

CREATE TABLE IF NOT EXISTS nightshift.parity_reports (
    report_pk      bigserial   PRIMARY KEY,
    workload       text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    rows_compared  integer     NOT NULL,
    rows_agreeing  integer     NOT NULL,
    agreement      numeric     NOT NULL,
    report         jsonb       NOT NULL
);
