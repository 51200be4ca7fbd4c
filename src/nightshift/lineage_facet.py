"""The run facet a night's lineage event carries: what the night cost and what became of its requests.

Imports the OpenLineage client (the ``openlineage`` extra), so only :mod:`nightshift.lineage`
imports it, and only when Airflow's listener asks for lineage.
"""

from __future__ import annotations

from attr import define
from openlineage.client.generated.base import RunFacet

SCHEMA_URL = "urn:nightshift:openlineage:NightshiftRunFacet:1-0-0"

#: The facet's JSON Schema (there is no public host to serve it from; ``SCHEMA_URL`` is its ``$id``).
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_URL,
    "title": "NightshiftRunFacet",
    "description": "One Nightshift night of a workload on the Message Batches API, as its ledger closed it.",
    "type": "object",
    "required": ["_producer", "_schemaURL", "runPk", "workload", "mode", "status", "batchIds", "requests",
                 "succeeded", "failed", "failedByReason", "rowsLanded", "landedIn", "rounds", "costUsd",
                 "streamingUncachedUsd"],
    "properties": {
        "_producer": {"type": "string"},
        "_schemaURL": {"const": SCHEMA_URL},
        "runPk": {"type": "integer", "description": "nightshift.runs.run_pk"},
        "workload": {"type": "string"},
        "mode": {"enum": ["queue", "interval", "shadow"]},
        "status": {"enum": ["succeeded", "failed", "empty"]},
        "batchIds": {"type": "array", "items": {"type": "string"},
                     "description": "the backend's id of each batch of the night, in the order made"},
        "requests": {"type": "integer", "minimum": 0},
        "succeeded": {"type": "integer", "minimum": 0},
        "failed": {"type": "integer", "minimum": 0},
        "failedByReason": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "rowsLanded": {"type": "integer", "minimum": 0,
                       "description": "rows written to landedIn: one per succeeded request"},
        "landedIn": {"type": "string",
                     "description": "the table the rows went to (a shadow table in shadow mode)"},
        "rounds": {"type": "integer", "minimum": 0},
        "costUsd": {"type": "number", "minimum": 0, "description": "what the night cost at the batch rate"},
        "streamingUncachedUsd": {"type": "number", "minimum": 0,
                                 "description": "what the same tokens would have cost on the streaming path"},
    },
    "additionalProperties": False,
}


@define
class NightshiftRunFacet(RunFacet):
    """What a night did (see :data:`SCHEMA`); the camelCase names follow OpenLineage's facets."""

    runPk: int  # noqa: N815
    workload: str
    mode: str
    status: str
    batchIds: list[str]  # noqa: N815
    requests: int
    succeeded: int
    failed: int
    failedByReason: dict[str, int]  # noqa: N815
    rowsLanded: int  # noqa: N815
    landedIn: str  # noqa: N815
    rounds: int
    costUsd: float  # noqa: N815
    streamingUncachedUsd: float  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL
