"""Downstream of the nightly enrichment and classification: the insights a dashboard reads.

This DAG belongs to the analytics team and knows nothing about how the rows were produced.
It runs whenever either destination table is updated; it must keep working, unchanged, when
the producer moves from the streaming path to the batch path.
"""

from datetime import datetime

from airflow.sdk import Asset, dag, task

TICKET_CLASSIFICATIONS = Asset(
    name="app.ticket_classifications", uri="postgres://appdb:5432/nightshift/app/ticket_classifications"
)
PRODUCT_ENRICHMENTS = Asset(
    name="app.product_enrichments", uri="postgres://appdb:5432/nightshift/app/product_enrichments"
)

QUERIES = {
    "tickets_by_label": "SELECT label, count(*) FROM app.ticket_classifications GROUP BY label",
    "products_by_category": "SELECT category, count(*) FROM app.product_enrichments GROUP BY category",
}


@dag(
    schedule=(TICKET_CLASSIFICATIONS | PRODUCT_ENRICHMENTS),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["analytics", "downstream"],
    doc_md=__doc__,
)
def nightly_insights():
    @task
    def summarize(triggering_asset_events=None) -> dict:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        # One run may stand for several producer events (after a backfill, say): name them all.
        events = triggering_asset_events or {}
        trigger = ", ".join(sorted(f"{asset.name} x{len(evts)}" for asset, evts in events.items())) or "manual"
        hook = PostgresHook(postgres_conn_id="nightshift_db")  # the app database, as the streaming path wrote it
        written = {}
        with hook.get_conn() as conn:
            for metric, query in QUERIES.items():
                rows = conn.execute(query).fetchall()
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO app.nightly_insights (trigger, metric, dimension, value) VALUES (%s, %s, %s, %s)",
                        [(trigger, metric, dimension, count) for dimension, count in rows],
                    )
                written[metric] = {dimension: count for dimension, count in rows}
            conn.commit()
        return {"trigger": trigger, "metrics": written}

    summarize()


nightly_insights_dag = nightly_insights()
