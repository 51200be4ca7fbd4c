"""DAG files: they parse fast, and touch neither a database nor the network while parsing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nightshift.paths import PROJECT_ROOT

DAGS = sorted((PROJECT_ROOT / "dags").glob("*.py"))

PROBE = r"""
import json, runpy, socket, sys, time

attempts = []
def refuse(self, address, *args, **kwargs):
    attempts.append(repr(address))
    raise OSError(f"DAG parsing tried to connect to {address!r}")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse

import airflow.sdk  # loaded once by every dag-processor; the DAG files' own cost is what follows
pre_loaded = set(sys.modules)
started = time.perf_counter()
dag_ids = []
for path in sys.argv[1:]:
    namespace = runpy.run_path(path)
    dag_ids += [v.dag_id for v in namespace.values() if type(v).__name__ == "DAG"]
elapsed = time.perf_counter() - started
heavy = sorted(m for m in ("anthropic", "psycopg", "psycopg2", "sqlalchemy.engine", "httpx") if m in sys.modules
               and m not in pre_loaded)
print(json.dumps({"elapsed": elapsed, "dag_ids": dag_ids, "attempts": attempts, "heavy": heavy}))
"""


def probe() -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, *map(str, DAGS)], capture_output=True, text=True,
                            cwd=Path(PROJECT_ROOT))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dag_files_parse_fast_without_db_or_network():
    report = probe()
    assert report["attempts"] == []
    assert report["heavy"] == [], "DAG files must import API clients and DB drivers inside tasks only"
    assert report["elapsed"] < 2.0, f"DAG files took {report['elapsed']:.2f}s to import"
    assert set(report["dag_ids"]) >= {
        "nightshift_batch_ticket_classification", "nightshift_batch_product_enrichment",
        "nightshift_stream_ticket_classification", "nightshift_stream_product_enrichment", "nightly_insights",
    }


def test_downstream_dag_consumes_exactly_the_assets_both_paths_produce():
    from nightshift.assets import destination_asset
    from nightshift.deployment import load_workloads
    import runpy

    namespace = runpy.run_path(str(PROJECT_ROOT / "dags" / "nightly_insights.py"))
    consumed = {(a.name, a.uri) for a in (namespace["TICKET_CLASSIFICATIONS"], namespace["PRODUCT_ENRICHMENTS"])}
    produced = {(destination_asset(w).name, destination_asset(w).uri) for w in load_workloads().values()}
    assert consumed == produced
