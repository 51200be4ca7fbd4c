"""Cascade runs in the ledger: the request shape confirmed for each later cascade model, and the
night's cost by model with what it would have cost on the cascade's last model alone.

What an item spent is its current round's usage (``nightshift.items``) plus every earlier attempt's
(``nightshift.attempts``, rounds before the item's own): an escalated or retried attempt is never lost.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def cascade_shapes(conn: psycopg.Connection, run_pk: int) -> dict[str, dict[str, Any]] | None:
    """The request shape confirmed for each cascade model after the first, if they were."""
    return conn.execute("SELECT details -> 'cascade_shapes' FROM nightshift.runs WHERE run_pk = %s",
                        (run_pk,)).fetchone()[0]


def record_cascade_shapes(conn: psycopg.Connection, run_pk: int, models: list[str],
                          shapes: dict[str, dict[str, Any]]) -> None:
    """The run's cascade (its models in order) and the shape confirmed for each model after the first."""
    conn.execute("UPDATE nightshift.runs SET details = details || jsonb_build_object("
                 "'cascade_models', %s::jsonb, 'cascade_shapes', %s::jsonb) WHERE run_pk = %s",
                 (Jsonb(models), Jsonb(shapes), run_pk))


def cascade_models(conn: psycopg.Connection, run_pk: int) -> list[str] | None:
    """The run's cascade models in order (None: not a cascade run, or none submitted yet)."""
    return conn.execute("SELECT details -> 'cascade_models' FROM nightshift.runs WHERE run_pk = %s",
                        (run_pk,)).fetchone()[0]


# Every billed attempt of the run once: the items' current attempts and their earlier (superseded) ones,
# by the model each was sent to (an item without one: the run's model), grouped also by whether the item
# was ever billed on the last model and by which side of that model's long-prompt threshold it is.
USAGE_BY_MODEL = """
WITH spent AS (
    SELECT i.custom_id, coalesce(i.model, r.model) AS model, i.status, i.input_tokens, i.output_tokens,
           i.cache_write_5m_tokens, i.cache_write_1h_tokens, i.cache_read_input_tokens, i.cost_usd
      FROM nightshift.items i JOIN nightshift.runs r USING (run_pk)
     WHERE i.run_pk = %(run_pk)s
    UNION ALL
    SELECT a.custom_id, a.model, 'superseded', a.input_tokens, a.output_tokens, a.cache_write_5m_tokens,
           a.cache_write_1h_tokens, a.cache_read_input_tokens, a.cost_usd
      FROM nightshift.attempts a JOIN nightshift.items i USING (run_pk, custom_id)
     WHERE a.run_pk = %(run_pk)s AND a.round < i.round
), reached_last AS (
    SELECT DISTINCT custom_id FROM spent WHERE model = %(last)s AND input_tokens IS NOT NULL
)
SELECT s.model, s.custom_id IN (SELECT custom_id FROM reached_last) AS reached_last,
       coalesce(s.input_tokens + s.cache_write_5m_tokens + s.cache_write_1h_tokens + s.cache_read_input_tokens
                > %(over)s, false) AS long_prompt,
       count(*) FILTER (WHERE s.status = 'succeeded') AS answered,
       count(*) FILTER (WHERE s.input_tokens IS NOT NULL) AS attempts,
       coalesce(sum(s.input_tokens), 0), coalesce(sum(s.output_tokens), 0),
       coalesce(sum(s.cache_write_5m_tokens), 0), coalesce(sum(s.cache_write_1h_tokens), 0),
       coalesce(sum(s.cache_read_input_tokens), 0),
       coalesce(sum(s.cost_usd), 0)
  FROM spent s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


def usage_by_model(conn: psycopg.Connection, run_pk: int, last: str, over: int) -> list[tuple]:
    """Per (model, reached the last model, long prompt): ``(model, reached_last, long_prompt, items
    answered, billed attempts, input, output, cache write 5m, cache write 1h, cache read, cost)``."""
    return conn.execute(USAGE_BY_MODEL, {"run_pk": run_pk, "last": last, "over": over}).fetchall()


def record_cost_by_model(conn: psycopg.Connection, run_pk: int, by_model: dict[str, Any],
                         last_model_alone_usd: Decimal | None) -> None:
    conn.execute("UPDATE nightshift.runs SET cost_by_model = %s, last_model_alone_usd = %s WHERE run_pk = %s",
                 (Jsonb(by_model), last_model_alone_usd, run_pk))


def cost_by_model(conn: psycopg.Connection, run_pk: int
                  ) -> tuple[dict[str, Any] | None, Decimal | None, Decimal | None]:
    """``(cost by model, last model alone, actual cost)`` recorded on the run when it closed."""
    return conn.execute("SELECT cost_by_model, last_model_alone_usd, cost_usd FROM nightshift.runs "
                        "WHERE run_pk = %s", (run_pk,)).fetchone()
