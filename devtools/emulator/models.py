"""The emulator's model catalogue, read from the single data file ``emulator/data/models.json``.

The file stands in for what Anthropic's servers know about each model: limits, which request
shapes it accepts, its tokenizer and its lifecycle. Every fact in it names the page it came
from (a key of ``pages``, each with its URL and the date it was read); :func:`catalogue`
refuses a file where one does not. The validation rules (``rules.py``) and the Models API
(``models_api.py``) read these specs; nothing else in the emulator knows a model by name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

MODELS_FILE = Path(__file__).resolve().parent / "data" / "models.json"
_SNAPSHOT_SUFFIX = re.compile(r"-\d{8}$")
#: Every effort level the API knows, lowest first (``anthropic.types.OutputConfigParam``).
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
#: Every ``thinking.type`` the API knows (``anthropic.types.ThinkingConfigParam``).
THINKING_TYPES = ("adaptive", "enabled", "disabled", "between_tools")
LIFECYCLES = ("active", "deprecated", "retired")
#: The facts each model must carry, each sourced.
SOURCED_FACTS = (
    "display_name",
    "released",
    "lifecycle",
    "context_window",
    "max_output_tokens",
    "batch_max_output_tokens",
    "min_cacheable_tokens",
    "tokenizer",
    "thinking",
    "effort",
    "forced_tool_choice",
    "sampling_parameters",
    "structured_outputs",
)


class CatalogueError(ValueError):
    """``models.json`` is missing a fact, a source or a page."""


@dataclass(frozen=True)
class Page:
    url: str
    read_on: str


@dataclass(frozen=True)
class Tokenizer:
    """How many tokens a character of text is, in the emulator's estimate (``tokens.py``)."""

    name: str
    tokens_per_char: Fraction


@dataclass(frozen=True)
class Thinking:
    #: What a request that omits ``thinking`` gets: ``adaptive``, or ``None`` for no thinking.
    default: str | None
    #: The ``thinking.type`` values a request may send.
    types: frozenset[str]
    #: ``display`` when a request does not say (``omitted`` → empty thinking text).
    display_default: str


@dataclass(frozen=True)
class Effort:
    #: Levels ``output_config.effort`` may take; empty when the model has no effort control.
    levels: tuple[str, ...]
    default: str | None
    #: Levels allowed when thinking is off (``between_tools``); empty when it cannot be off.
    levels_with_thinking_off: tuple[str, ...]


@dataclass(frozen=True)
class ModelSpec:
    id: str
    display_name: str
    line: str | None
    released: str
    lifecycle: str
    deprecated_at: str | None
    retires_at: str | None
    context_window: int
    max_output_tokens: int
    #: ``max_tokens`` allowed inside a batch with ``batch_max_output_beta`` sent on the create.
    batch_max_output_tokens: int | None
    batch_max_output_beta: str | None
    min_cacheable_tokens: int
    tokenizer: Tokenizer
    thinking: Thinking
    effort: Effort
    forced_tool_choice: bool
    sampling_parameters: bool
    structured_outputs: bool
    batch: bool
    sources: dict[str, Page]

    @property
    def retired(self) -> bool:
        return self.lifecycle == "retired"

    def max_tokens_allowed(self, *, in_batch: bool, betas: frozenset[str]) -> int:
        if in_batch and self.batch_max_output_beta in betas and self.batch_max_output_tokens:
            return self.batch_max_output_tokens
        return self.max_output_tokens


@dataclass(frozen=True)
class Catalogue:
    models: dict[str, ModelSpec]
    aliases: dict[str, str]
    pages: dict[str, Page]

    def resolve(self, model_id: str) -> ModelSpec | None:
        """An id, an alias, or an id followed by a ``-YYYYMMDD`` snapshot date."""
        if model_id in self.models:
            return self.models[model_id]
        if model_id in self.aliases:
            return self.models[self.aliases[model_id]]
        return self.models.get(_SNAPSHOT_SUFFIX.sub("", model_id))


@cache
def catalogue() -> Catalogue:
    return load_catalogue(MODELS_FILE)


def resolve_model(model_id: str) -> ModelSpec | None:
    return catalogue().resolve(model_id)


def load_catalogue(path: Path) -> Catalogue:
    raw = json.loads(path.read_text(encoding="utf-8"))
    pages = {key: _page(key, value) for key, value in raw["pages"].items()}
    tokenizers = {
        name: Tokenizer(name, Fraction(spec["tokens_per_char"]).limit_denominator(1000))
        for name, spec in raw["tokenizers"].items()
    }
    models: dict[str, ModelSpec] = {}
    aliases: dict[str, str] = {}
    for model_id, spec in raw["models"].items():
        models[model_id] = _model(model_id, spec, pages, tokenizers)
        for alias in spec.get("aliases", []):
            aliases[alias] = model_id
    return Catalogue(models, aliases, pages)


def _page(key: str, value: Any) -> Page:
    if not isinstance(value, dict) or not str(value.get("url", "")).startswith("https://"):
        raise CatalogueError(f"page {key!r} has no https URL")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value.get("read_on", ""))):
        raise CatalogueError(f"page {key!r} has no read_on date (YYYY-MM-DD)")
    return Page(value["url"], value["read_on"])


def _model(model_id: str, spec: dict[str, Any], pages: dict[str, Page], tokenizers: dict[str, Tokenizer]) -> ModelSpec:
    where = f"models.json: model {model_id!r}"
    sources = spec.get("sources", {})
    for fact in SOURCED_FACTS:
        if fact not in spec:
            raise CatalogueError(f"{where} has no {fact!r}")
        if sources.get(fact) not in pages:
            raise CatalogueError(f"{where}: fact {fact!r} names no page of 'pages' as its source")
    if spec["lifecycle"] not in LIFECYCLES:
        raise CatalogueError(f"{where}: lifecycle must be one of {LIFECYCLES}")
    thinking, effort = spec["thinking"], spec["effort"]
    types = frozenset(thinking["types"])
    if not types <= set(THINKING_TYPES) or not set(effort["levels"]) <= set(EFFORT_LEVELS):
        raise CatalogueError(f"{where}: unknown thinking type or effort level")
    if spec["tokenizer"] not in tokenizers:
        raise CatalogueError(f"{where}: tokenizer {spec['tokenizer']!r} is not in 'tokenizers'")
    return ModelSpec(
        id=model_id,
        display_name=spec["display_name"],
        line=spec.get("line"),
        released=spec["released"],
        lifecycle=spec["lifecycle"],
        deprecated_at=spec.get("deprecated_at"),
        retires_at=spec.get("retires_at"),
        context_window=int(spec["context_window"]),
        max_output_tokens=int(spec["max_output_tokens"]),
        batch_max_output_tokens=spec["batch_max_output_tokens"],
        batch_max_output_beta=spec.get("batch_max_output_beta"),
        min_cacheable_tokens=int(spec["min_cacheable_tokens"]),
        tokenizer=tokenizers[spec["tokenizer"]],
        thinking=Thinking(thinking.get("default"), types, thinking.get("display_default", "omitted")),
        effort=Effort(tuple(effort["levels"]), effort.get("default"), tuple(effort.get("with_thinking_off", ()))),
        forced_tool_choice=bool(spec["forced_tool_choice"]),
        sampling_parameters=bool(spec["sampling_parameters"]),
        structured_outputs=bool(spec["structured_outputs"]),
        batch=bool(spec.get("batch", True)),
        sources={fact: pages[page] for fact, page in sources.items()},
    )
