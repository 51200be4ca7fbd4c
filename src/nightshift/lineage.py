"""OpenLineage from the batch path's operators: the tables each task read and wrote, and what the night spent.

Airflow's OpenLineage listener (the provider is the ``openlineage`` extra) calls
``get_openlineage_facets_on_complete`` on an operator once it has run. The mixins here answer
from what ``execute`` kept on the operator (``lineage_run``, ``lineage_result``,
``lineage_summary``), plus one ledger read for the night's batch ids, and never call an API.

Tables are named as the postgres provider names them: namespace ``postgres://host:port`` of the
application database's connection, name ``database.schema.table``.

========  ==========================================  ==========================================
task      inputs                                      outputs
========  ==========================================  ==========================================
collect   the source table; the queue (the            the ledger's items
          destination instead, for a backfill)
land      the ledger's items                          the destination (the shadow table of a
                                                      shadow run), with the rows landed
finalize  (none)                                      the same table, and the night's
                                                      ``nightshift`` run facet
========  ==========================================  ==========================================

The source rows are read by ``submit``; collect names the source so a night's lineage starts
where its data does. Nothing here imports OpenLineage until the listener asks: without the
provider every method returns None, and DAG files parse as fast as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from nightshift.config import settings
from nightshift.ledger.status import RunMode

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from nightshift.batch.finalize import RunSummary
    from nightshift.batch.land import LandResult
    from nightshift.batch.ledger import Run

QUEUE_TABLE = "app.llm_requests"
LEDGER_ITEMS_TABLE = "nightshift.items"
RUN_FACET = "nightshift"
POSTGRES_DEFAULT_PORT = 5432


def openlineage_installed() -> bool:
    try:
        import airflow.providers.openlineage.extractors  # noqa: F401
        import openlineage.client  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class PostgresNaming:
    """OpenLineage names of one database's tables, as the postgres provider's hook gives them
    (``get_openlineage_database_info``: scheme ``postgres``, authority ``host:port``, the database)."""

    namespace: str
    database: str

    @classmethod
    def of(cls, conn_id: str) -> PostgresNaming:
        """``conn_id`` as :func:`nightshift.db.connect` takes it: an Airflow connection id or a URL."""
        from nightshift import db

        url = urlparse(db.dsn(conn_id))
        authority = f"{url.hostname}:{url.port or POSTGRES_DEFAULT_PORT}"
        return cls(f"postgres://{authority}", unquote(url.path.lstrip("/")))

    def name(self, table: str) -> str:
        """``schema.table`` → ``database.schema.table``."""
        return f"{self.database}.{table}"

    def input(self, table: str):
        from openlineage.client.generated.base import InputDataset

        return InputDataset(namespace=self.namespace, name=self.name(table))

    def output(self, table: str, rows: int | None = None):
        from openlineage.client.generated.base import OutputDataset
        from openlineage.client.generated.output_statistics_output_dataset import (
            OutputStatisticsOutputDatasetFacet,
        )

        facets = {} if rows is None else {
            "outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=rows)}
        return OutputDataset(namespace=self.namespace, name=self.name(table), outputFacets=facets)


class _Lineage:
    """What the mixins need of the operator (``NightshiftTask``), and what its execute leaves."""

    workload: Any
    db_conn_id: str | None
    db: Any  # NightshiftTask.db: a connection to the application database
    lineage_run: Run | None = None

    def lineage_naming(self) -> PostgresNaming:
        return PostgresNaming.of(self.db_conn_id or settings().db_conn_id)

    def landed_table(self, run: Run) -> str:
        """Where the night's rows go: the destination, or in a shadow run its shadow table."""
        if run.shadow:
            from nightshift.migration.modes import shadow_table

            return shadow_table(self.workload)
        return self.workload.destination.table


class CollectLineage(_Lineage):
    def get_openlineage_facets_on_complete(self, task_instance) -> OperatorLineage | None:
        run = self.lineage_run
        if run is None or not openlineage_installed():
            return None
        from airflow.providers.openlineage.extractors import OperatorLineage

        naming = self.lineage_naming()
        # A backfill takes the interval's source rows, skipping those the destination already has
        # at the current prompt version; the nightly and shadow runs take the queue's requests.
        taken_from = self.workload.destination.table if run.mode == RunMode.INTERVAL else QUEUE_TABLE
        return OperatorLineage(inputs=[naming.input(self.workload.source.table), naming.input(taken_from)],
                               outputs=[naming.output(LEDGER_ITEMS_TABLE)])


class LandLineage(_Lineage):
    lineage_result: LandResult | None = None

    def get_openlineage_facets_on_complete(self, task_instance) -> OperatorLineage | None:
        run = self.lineage_run
        if run is None or not openlineage_installed():
            return None
        from airflow.providers.openlineage.extractors import OperatorLineage

        naming = self.lineage_naming()
        # Each succeeded result is upserted as one row; a land that failed half-way reports the table only.
        rows = None if self.lineage_result is None else self.lineage_result.outcomes.get("succeeded", 0)
        return OperatorLineage(inputs=[naming.input(LEDGER_ITEMS_TABLE)],
                               outputs=[naming.output(self.landed_table(run), rows=rows)])


class FinalizeLineage(_Lineage):
    lineage_summary: RunSummary | None = None

    def get_openlineage_facets_on_complete(self, task_instance) -> OperatorLineage | None:
        run, summary = self.lineage_run, self.lineage_summary
        if run is None or summary is None or not openlineage_installed():
            return None
        from airflow.providers.openlineage.extractors import OperatorLineage

        from nightshift.ledger.lineage import run_batch_ids
        from nightshift.lineage_facet import NightshiftRunFacet

        with self.db() as conn:
            batch_ids = run_batch_ids(conn, run.run_pk)
        landed_in = self.landed_table(run)
        naming = self.lineage_naming()
        facet = NightshiftRunFacet(
            runPk=run.run_pk, workload=summary.workload, mode=str(run.mode), status=str(summary.status),
            batchIds=batch_ids, requests=summary.requests, succeeded=summary.succeeded,
            failed=summary.failed_total, failedByReason=dict(summary.failed), rowsLanded=summary.succeeded,
            landedIn=naming.name(landed_in), rounds=summary.rounds,
            costUsd=float(summary.costs["cost_usd"]),
            streamingUncachedUsd=float(summary.costs["streaming_uncached_usd"]))
        # Finalize publishes the table's Asset; naming the table here keeps Airflow from adding the
        # Asset's own URI (the workload's declared one) as a second name for it.
        return OperatorLineage(outputs=[naming.output(landed_in)], run_facets={RUN_FACET: facet})
