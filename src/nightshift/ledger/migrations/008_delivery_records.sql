-- Per destination row, what produced it: the provenance a destination table may have no column for
-- (model, prompt version, request), and the queue order that decides which result a row keeps.
CREATE TABLE IF NOT EXISTS nightshift.deliveries (
    destination    text        NOT NULL,  -- the table written, schema-qualified (a shadow table too)
    source_key     text        NOT NULL,  -- the destination key, as text
    workload       text        NOT NULL,
    model          text        NOT NULL,
    prompt_version text        NOT NULL,
    request_id     bigint,                -- NULL for an interval (backfill) row
    landed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (destination, source_key)
);
