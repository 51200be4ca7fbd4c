"""What tokens cost: the price table, and the arithmetic every cost figure is made of.

One function prices a usage; the batch rate, the streaming rate with caching and the
streaming rate without it (the old path) are that function with different switches, so the
savings a report shows are differences of like with like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from nightshift import paths

MILLION = Decimal(1_000_000)


class UnknownModel(ValueError):
    pass


@dataclass(frozen=True)
class ModelPrice:
    """Dollars per million tokens at the standard rate."""

    model: str
    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal
    min_cacheable_tokens: int


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
class PriceTable:
    as_of: date
    source: str
    batch_discount: Decimal
    models: dict[str, ModelPrice]

    def price(self, model: str) -> ModelPrice:
        try:
            return self.models[model]
        except KeyError:
            raise UnknownModel(
                f"model {model!r} is not in the price table (include/prices.yaml, as of {self.as_of}); "
                f"known: {sorted(self.models)}. Add its prices rather than let its cost count as zero."
            ) from None

    def cost(self, usage: Usage, model: str, *, batch: bool, cached: bool = True) -> Decimal:
        """Dollars for ``usage``. ``cached=False`` prices every input token as plain input,
        which is what the same work cost on the old streaming path with no caching."""
        p = self.price(model)
        if cached:
            tokens_times_rate = (usage.input_tokens * p.input + usage.cache_write_5m_tokens * p.cache_write_5m
                                 + usage.cache_write_1h_tokens * p.cache_write_1h + usage.cache_read_tokens * p.cache_read)
        else:
            tokens_times_rate = usage.total_input_tokens * p.input
        total = (tokens_times_rate + usage.output_tokens * p.output) / MILLION
        return total * self.batch_discount if batch else total


def load_price_table(path: Path | None = None) -> PriceTable:
    import yaml

    path = path or paths.include_dir() / "prices.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    multipliers = {k: Decimal(str(v)) for k, v in raw["cache_multipliers"].items()}
    models = {}
    for name, spec in raw["models"].items():
        base = Decimal(str(spec["input"]))
        models[name] = ModelPrice(
            model=name,
            input=base,
            output=Decimal(str(spec["output"])),
            cache_write_5m=Decimal(str(spec.get("cache_write_5m", base * multipliers["write_5m"]))),
            cache_write_1h=Decimal(str(spec.get("cache_write_1h", base * multipliers["write_1h"]))),
            cache_read=Decimal(str(spec.get("cache_read", base * multipliers["read"]))),
            min_cacheable_tokens=int(spec["min_cacheable_tokens"]),
        )
    return PriceTable(as_of=raw["as_of"], source=raw["source"], batch_discount=Decimal(str(raw["batch_discount"])),
                      models=models)


@lru_cache(maxsize=1)
def price_table() -> PriceTable:
    return load_price_table()
