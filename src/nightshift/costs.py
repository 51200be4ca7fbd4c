"""What tokens cost: the price table, and the arithmetic every cost figure is made of.

One function prices a usage; the batch rate, the streaming rate with caching and the
streaming rate without it (the old path) are that function with different switches, so the
savings a report shows are differences of like with like.

Prices are effective-dated: each model has rows, each in force from its date, and a cost is
priced with the row in force on the day the work was billed (a run's start date), so past
nights keep their cost. A row may have a long-prompt band: a request whose prompt (input,
cache writes and cache reads) is over the band's threshold pays the band's rates on every
token of that request, output included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from nightshift import paths

MILLION = Decimal(1_000_000)
RATE_NAMES = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


class UnknownModel(ValueError):
    pass


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_write_5m_tokens + self.cache_write_1h_tokens + self.cache_read_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.__dict__.values(), other.__dict__.values(), strict=True)))


@dataclass(frozen=True)
class Rates:
    """Dollars per million tokens at the standard rate."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal

    def dollars(self, usage: Usage, *, cached: bool) -> Decimal:
        if cached:
            prompt = (usage.input_tokens * self.input + usage.cache_write_5m_tokens * self.cache_write_5m
                      + usage.cache_write_1h_tokens * self.cache_write_1h + usage.cache_read_tokens * self.cache_read)
        else:
            prompt = usage.total_input_tokens * self.input
        return (prompt + usage.output_tokens * self.output) / MILLION


@dataclass(frozen=True)
class ModelPrice:
    """A model's price row: in force from ``effective_from`` until the next row's date."""

    model: str
    effective_from: date
    rates: Rates
    min_cacheable_tokens: int
    source: str
    long_prompt_over: int | None = None
    long_prompt: Rates | None = None

    def rates_for(self, usage: Usage) -> Rates:
        if self.long_prompt is not None and usage.total_input_tokens > (self.long_prompt_over or 0):
            return self.long_prompt
        return self.rates


@dataclass(frozen=True)
class PriceTable:
    as_of: date
    source: str
    batch_discount: Decimal
    rows: dict[str, list[ModelPrice]] = field(default_factory=dict)

    @property
    def models(self) -> dict[str, ModelPrice]:
        """Each model's row in force today."""
        return {model: self.price(model) for model in self.rows}

    def price(self, model: str, on: date | None = None) -> ModelPrice:
        day = on or datetime.now(timezone.utc).date()
        rows = self.rows.get(model)
        if not rows:
            raise UnknownModel(
                f"model {model!r} is not in the price table (nightshift/data/prices.yaml, read {self.as_of}); "
                f"known: {sorted(self.rows)}. Add its prices rather than let its cost count as zero.")
        in_force = [row for row in rows if row.effective_from <= day]
        if not in_force:
            raise UnknownModel(f"model {model!r} has no price in force on {day} (its first row is from "
                               f"{rows[0].effective_from}; nightshift/data/prices.yaml)")
        return in_force[-1]

    def cost(self, usage: Usage, model: str, *, batch: bool, cached: bool = True, on: date | None = None) -> Decimal:
        """Dollars for one request's ``usage`` (or several that share a band). ``cached=False``
        prices every input token as plain input: the same work on the old path, with no caching."""
        total = self.price(model, on).rates_for(usage).dollars(usage, cached=cached)
        return total * self.batch_discount if batch else total


def _rates(spec: dict[str, Any], where: str) -> Rates:
    missing = [name for name in RATE_NAMES if name not in spec]
    if missing:
        raise ValueError(f"nightshift/data/prices.yaml: {where} has no {', '.join(missing)}")
    return Rates(*(Decimal(str(spec[name])) for name in RATE_NAMES))


def load_price_table(path: Path | None = None) -> PriceTable:
    import yaml

    path = path or paths.package_data("prices.yaml")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    pages = raw["pages"]
    rows: dict[str, list[ModelPrice]] = {}
    for model, spec in raw["models"].items():
        minimum = int(spec["min_cacheable_tokens"])
        for source in (spec["min_cacheable_source"], *(row["source"] for row in spec["prices"])):
            if source not in pages:
                raise ValueError(f"nightshift/data/prices.yaml: model {model!r} names no page {source!r} of 'pages'")
        model_rows = []
        for row in spec["prices"]:
            where = f"model {model!r} row from {row['from']}"
            band = row.get("long_prompt")
            model_rows.append(ModelPrice(
                model=model, effective_from=_day(row["from"]), rates=_rates(row, where), min_cacheable_tokens=minimum,
                source=row["source"], long_prompt_over=int(band["over_tokens"]) if band else None,
                long_prompt=_rates(band, f"{where}, long_prompt") if band else None))
        rows[model] = sorted(model_rows, key=lambda r: r.effective_from)
    return PriceTable(as_of=_day(raw["read_on"]), source=str(path), batch_discount=Decimal(str(raw["batch_discount"])),
                      rows=rows)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@lru_cache(maxsize=1)
def price_table() -> PriceTable:
    return load_price_table()
