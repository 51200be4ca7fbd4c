"""Cost benchmark: one reference classification night on the emulator, priced.

Reports the ratio of the night's actual cost to (a) what the same tokens cost on the old
streaming path without caching and (b) the theoretical floor: every request at the batch
rate, the prefix written once and read by every other request. The same night also runs on the
model the workload used before (Claude Haiku 4.5, through a forced tool, as it was sent then),
to show what the move to the workload's model saves.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import anthropic
import psycopg

from nightshift import db
from nightshift_dev import demo_data
from nightshift.batch.collect import collect
from nightshift.backends.anthropic import AnthropicBackend
from nightshift.batch.finalize import finalize_run
from nightshift.batch.land import land_round
from nightshift.batch.ledger import ensure_run
from nightshift.batch.submit import Caps, submit_round
from nightshift.config import settings
from nightshift.costs import MILLION, price_table
from nightshift.deployment import get_workload
from nightshift.workloads.definition import Workload
from nightshift.workloads.shape import Delivery
from nightshift_dev.localdev.schema import apply_schema

ITEM_REPEAT = 9  # demo ticket bodies repeated to ~200 tokens per item


#: The model the reference workload ran on before Haiku 5.5, and how its answer was asked for then.
PREVIOUS_MODEL = "claude-haiku-4-5"


def _on_previous_model(workload: Workload) -> Workload:
    output = workload.output.model_copy(update={"delivery": Delivery.FORCED_TOOL})
    return workload.model_copy(update={"model": PREVIOUS_MODEL, "effort": None, "output": output})


def run(requests: int = 1000, out: Path = Path("artifacts/cost-bench.json")) -> dict:
    current = get_workload("ticket_classification")
    result = _night(current, requests)
    previous = _night(_on_previous_model(current), requests)
    result["previous_model"] = {"model": PREVIOUS_MODEL, "actual_usd": previous["actual_usd"],
                                "streaming_uncached_usd": previous["streaming_uncached_usd"],
                                "actual_over_previous": round(result["actual_usd"] / previous["actual_usd"], 4)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


def _night(workload: Workload, requests: int) -> dict:
    from emulator.testing import EmulatorServer
    from nightshift_dev.localdev.environment import profile

    cluster = profile("test").cluster
    started = cluster.ensure_started()
    try:
        with psycopg.connect(cluster.dsn()) as conn:
            conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
            conn.execute("DROP SCHEMA IF EXISTS nightshift CASCADE")
            apply_schema(conn)
            demo_data.generate(conn, tickets=requests, products=0, bad_every=0)
            conn.execute("UPDATE app.support_tickets SET body = rtrim(repeat(body || ' ', %s))", (ITEM_REPEAT,))
            conn.commit()
            with EmulatorServer(Path(tempfile.mkdtemp()), rate="inf") as emulator:
                backend = AnthropicBackend(anthropic.Anthropic(base_url=emulator.url, api_key=emulator.api_key))
                run_ = ensure_run(conn, workload, dag_id="cost-bench", airflow_run_id=str(time.time()))
                collect(conn, workload, run_)
                caps = Caps.for_workload(workload, settings().max_queued_requests)
                submitted = submit_round(conn, backend, workload, run_, 0, caps)
                while not all(backend.retrieve(b).ended for b in submitted.batch_ids):
                    time.sleep(0.2)
                land_round(conn, backend, workload, run_, 0)
                summary = finalize_run(conn, run_)
            row = conn.execute(
                "SELECT cost_usd, streaming_uncached_usd, streaming_cached_usd, prefix_tokens, input_tokens, "
                "output_tokens, cache_read_tokens, cache_write_tokens FROM nightshift.runs WHERE run_pk = %s",
                (run_.run_pk,)).fetchone()
    finally:
        if started:
            cluster.stop()
    actual, uncached, cached, prefix, item_input, output, reads, writes = row
    price = price_table().price(workload.model).rates  # the night ran today: today's row
    n = summary.succeeded
    floor = price_table().batch_discount * (
        item_input * price.input + output * price.output + prefix * price.cache_write_1h
        + (n - 1) * prefix * price.cache_read) / MILLION
    result = {
        "workload": workload.name, "model": workload.model, "requests": n, "prefix_tokens": prefix,
        "mean_item_input_tokens": round(item_input / n), "mean_output_tokens": round(output / n),
        "actual_usd": float(actual), "streaming_uncached_usd": float(uncached), "streaming_cached_usd": float(cached),
        "floor_usd": float(floor),
        "actual_over_streaming_uncached": round(float(actual / uncached), 4),
        "actual_over_floor": round(float(actual / floor), 4),
        "cache_read_tokens": reads, "cache_write_tokens": writes, "prices_as_of": str(price_table().as_of),
    }
    return result


def print_result(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Cost of a reference {result['workload']} night on {result['model']} "
                        f"({result['requests']} requests, "
                        f"{result['prefix_tokens']}-token prefix, ~{result['mean_item_input_tokens']}-token items, "
                        f"~{result['mean_output_tokens']}-token outputs, prices as of {result['prices_as_of']})",
                  title_justify="left")
    for column in ("path", "cost", "actual / this"):
        table.add_column(column, justify="left" if column == "path" else "right")
    table.add_row("batch + cache (actual)", f"${result['actual_usd']:.4f}", "1.000")
    table.add_row("streaming, no cache (the old path)", f"${result['streaming_uncached_usd']:.4f}",
                  f"{result['actual_over_streaming_uncached']:.3f}")
    table.add_row("streaming, cached", f"${result['streaming_cached_usd']:.4f}",
                  f"{result['actual_usd'] / result['streaming_cached_usd']:.3f}")
    table.add_row("theoretical floor (batch, one write, all reads)", f"${result['floor_usd']:.4f}",
                  f"{result['actual_over_floor']:.3f}")
    previous = result.get("previous_model")
    if previous:
        table.add_row(f"the same night on {previous['model']} (batch + cache)", f"${previous['actual_usd']:.4f}",
                      f"{previous['actual_over_previous']:.3f}")
    Console(width=120).print(table)
