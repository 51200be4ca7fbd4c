"""Nightshift's own table of what each model accepts: ``nightshift/data/models.yaml``.

It decides how a workload's request is shaped (``workloads/requests.py``): structured outputs or
a forced tool, how thinking is turned off, which efforts exist. The table is checked into the
repository, dated and sourced; once per run it is checked against the Models API (what
``client.models.retrieve`` says wins for that run, see :func:`reconcile`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from nightshift import paths


#: Every model's facts that must each name their page.
SOURCED_FACTS = ("structured_outputs", "forced_tool_choice", "thinking", "effort")


class UnknownModel(ValueError):
    pass


class ThinkingOff(StrEnum):
    """How a model turns thinking off: its ``thinking.type`` for "off", or that it cannot."""

    DISABLED = "disabled"
    BETWEEN_TOOLS = "between_tools"
    NONE = "none"


@dataclass(frozen=True)
class ModelCapabilities:
    model: str
    structured_outputs: bool
    forced_tool_choice: bool
    thinks_by_default: bool
    thinking_off: ThinkingOff
    effort_levels: tuple[str, ...]
    default_effort: str | None
    effort_levels_with_thinking_off: tuple[str, ...]
    retired_on: str | None = None


@dataclass(frozen=True)
class ModelTable:
    read_on: str
    models: dict[str, ModelCapabilities]
    thinking_allowance_by_effort: dict[str, int]
    answer_allowance_tokens: int

    def capabilities(self, model: str) -> ModelCapabilities:
        try:
            caps = self.models[model]
        except KeyError:
            raise UnknownModel(
                f"model {model!r} is not in Nightshift's model table (nightshift/data/models.yaml, read {self.read_on}); "
                f"known: {sorted(m for m, c in self.models.items() if c.retired_on is None)}") from None
        if caps.retired_on is not None:
            raise UnknownModel(f"model {model!r} was retired on {caps.retired_on}: the API refuses every request "
                               "to it (move the workload to a current model)")
        return caps

    def thinking_allowance(self, effort: str | None) -> int:
        return self.thinking_allowance_by_effort[effort or "high"]


def load_model_table(path: Path | None = None) -> ModelTable:
    import yaml

    raw = yaml.safe_load((path or paths.package_data("models.yaml")).read_text(encoding="utf-8"))
    for name, spec in raw["models"].items():
        sources = spec.get("sources") or {}
        facts = [*SOURCED_FACTS, *(["retired_on"] if spec.get("retired_on") else [])]
        unsourced = [fact for fact in facts if sources.get(fact) not in raw["pages"]]
        if unsourced:
            raise ValueError(f"nightshift/data/models.yaml: model {name!r} names no page of 'pages' for {unsourced}")
    models = {name: _capabilities(name, spec) for name, spec in raw["models"].items()}
    return ModelTable(str(raw["read_on"]), models, dict(raw["thinking_allowance_by_effort"]),
                      int(raw["answer_allowance_tokens"]))


def _capabilities(name: str, spec: dict[str, Any]) -> ModelCapabilities:
    thinking, effort = spec["thinking"], spec["effort"]
    return ModelCapabilities(
        model=name,
        structured_outputs=bool(spec["structured_outputs"]),
        forced_tool_choice=bool(spec["forced_tool_choice"]),
        thinks_by_default=thinking["default"] == "adaptive",
        thinking_off=ThinkingOff(thinking["off_type"]),
        effort_levels=tuple(effort["levels"]),
        default_effort=effort.get("default"),
        effort_levels_with_thinking_off=tuple(effort.get("with_thinking_off", effort["levels"])),
        retired_on=str(spec["retired_on"]) if spec.get("retired_on") else None,
    )


@lru_cache(maxsize=1)
def model_table() -> ModelTable:
    return load_model_table()


def reconcile(table: ModelCapabilities, api: dict[str, Any]) -> tuple[ModelCapabilities, list[str]]:
    """The table's entry with what the Models API says (``ModelInfo.capabilities`` as a dict) winning,
    and a line for each disagreement."""
    found: dict[str, Any] = {}
    structured = api.get("structured_outputs", {}).get("supported")
    if structured is not None:
        found["structured_outputs"] = bool(structured)
    types = api.get("thinking", {}).get("types") or {}
    if types:
        off = (ThinkingOff.BETWEEN_TOOLS if types.get("between_tools", {}).get("supported") else
               ThinkingOff.DISABLED if types.get("disabled", {}).get("supported") else ThinkingOff.NONE)
        found["thinking_off"] = off
    effort = api.get("effort") or {}
    if "supported" in effort:
        levels = tuple(level for level in ("low", "medium", "high", "xhigh", "max")
                       if (effort.get(level) or {}).get("supported"))
        found["effort_levels"] = levels if effort["supported"] else ()
    differences = [f"{name}: table says {getattr(table, name)!r}, the Models API says {value!r}"
                   for name, value in found.items() if getattr(table, name) != value]
    return replace(table, **found), differences
