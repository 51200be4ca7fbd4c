-- The application database as the streaming path left it. The destination tables and
-- their columns are the contract: the batch path writes exactly these, so dashboards and
-- downstream DAGs cannot tell which path produced a row (delivery metadata aside).

CREATE SCHEMA IF NOT EXISTS app;

-- Source rows -------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS app.products (
    product_id   bigint      PRIMARY KEY,
    sku          text        NOT NULL UNIQUE,
    title        text        NOT NULL,
    brand        text,
    description  text,
    price_cents  integer     CHECK (price_cents >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS app.support_tickets (
    ticket_id      bigint      PRIMARY KEY,
    customer_email text        NOT NULL,
    customer_tier  text        NOT NULL DEFAULT 'standard'
                               CHECK (customer_tier IN ('free', 'standard', 'enterprise')),
    subject        text        NOT NULL,
    body           text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS support_tickets_created_at ON app.support_tickets (created_at);
CREATE INDEX IF NOT EXISTS products_updated_at ON app.products (updated_at);

-- The request queue (app.llm_requests) is Nightshift's: `nightshift db upgrade` creates it
-- (src/nightshift/ledger/migrations/009_request_queue.sql), with nightshift.enqueue to fill it.

-- Destination tables (the contract) -----------------------------------------------------

CREATE TABLE IF NOT EXISTS app.product_enrichments (
    product_id      bigint      PRIMARY KEY REFERENCES app.products (product_id),
    summary         text        NOT NULL,
    category        text        NOT NULL,
    attributes      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    model           text        NOT NULL,
    prompt_version  text        NOT NULL,
    request_id      bigint,
    enriched_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS app.ticket_classifications (
    ticket_id       bigint      PRIMARY KEY REFERENCES app.support_tickets (ticket_id),
    label           text        NOT NULL
                                CHECK (label IN ('billing', 'bug', 'feature_request', 'account', 'shipping', 'other')),
    rationale       text        NOT NULL,
    model           text        NOT NULL,
    prompt_version  text        NOT NULL,
    request_id      bigint,
    classified_at   timestamptz NOT NULL DEFAULT now()
);

-- What the downstream nightly report writes ----------------------------------------------

CREATE TABLE IF NOT EXISTS app.nightly_insights (
    report_id     bigserial   PRIMARY KEY,
    generated_at  timestamptz NOT NULL DEFAULT now(),
    trigger       text        NOT NULL,
    metric        text        NOT NULL,
    dimension     text        NOT NULL,
    value         numeric     NOT NULL
);
