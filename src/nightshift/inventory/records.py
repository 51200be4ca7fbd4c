"""Reading a traffic file: one validated record per line, and one clear error per malformed line.

A traffic file is CSV with a header (``.csv``) or JSON Lines (``.jsonl``); the field list is in
docs/inventory.md. A malformed row never stops the read: it becomes a :class:`RowError` naming
its line and fields, and the rows after it keep flowing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

REQUIRED_FIELDS = ("time", "feature", "trigger", "destination", "model", "input_tokens", "output_tokens")
OPTIONAL_FIELDS = ("cache_creation_input_tokens", "cache_read_input_tokens", "seconds_to_first_read",
                   "prefix_hash", "prefix_tokens", "requests", "task")
FORMATS = {".csv": "csv", ".jsonl": "jsonl"}

_INT_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
               "prefix_tokens", "requests")


class InventoryInputError(ValueError):
    """The file as a whole cannot be read (missing, unknown extension, a CSV header without a required column)."""


class TrafficRecord(BaseModel):
    """One API request, or an aggregated group of ``requests`` requests with summed token counts."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    time: datetime
    feature: str = Field(min_length=1)
    trigger: str = Field(min_length=1)
    destination: str = Field(min_length=1)
    model: str = Field(min_length=1)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cache_creation_input_tokens: int = Field(default=0, ge=0)
    cache_read_input_tokens: int = Field(default=0, ge=0)
    seconds_to_first_read: float | None = Field(default=None, ge=0)
    prefix_hash: str | None = None
    prefix_tokens: int | None = Field(default=None, ge=0)
    requests: int = Field(default=1, ge=1)
    #: The kind of work (``classification``, ``extraction``, ``summarization``…): the routing lever's input.
    task: str | None = None

    @field_validator("time", mode="before")
    @classmethod
    def _time_is_iso_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"expected an ISO 8601 timestamp as text, got {type(value).__name__}")
        return value

    @field_validator("time")
    @classmethod
    def _naive_time_is_utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator(*_INT_FIELDS, mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a whole number, got true/false")
        return value

    @field_validator("trigger", "destination", "task")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return None if value is None else value.lower()

    @property
    def prompt_tokens(self) -> int:
        """Every input token of the row, however it was billed."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def day(self) -> date:
        return self.time.date()


@dataclass(frozen=True)
class RowError:
    line: int
    problems: tuple[tuple[str, str], ...]  # (field, what is wrong)

    @property
    def fields(self) -> list[str]:
        return [name for name, _ in self.problems]

    def __str__(self) -> str:
        return f"line {self.line}: " + "; ".join(
            message if name.startswith("(") else f"field '{name}': {message}" for name, message in self.problems)


@dataclass
class ParsedTraffic:
    path: Path
    format: str
    records: list[TrafficRecord] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return len(self.records) + len(self.errors)


def read_traffic(path: Path | str) -> ParsedTraffic:
    """Every row of the file, validated; malformed rows are collected as errors, not raised."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InventoryInputError(f"{path}: cannot tell the format from the extension {path.suffix!r}; "
                                  f"name the file .csv (with a header) or .jsonl")
    if not path.is_file():
        raise InventoryInputError(f"{path}: no such file")
    parsed = ParsedTraffic(path, fmt)
    rows = _csv_rows(path) if fmt == "csv" else _jsonl_rows(path)
    for line, raw, early_problem in rows:
        if early_problem:
            parsed.errors.append(RowError(line, (early_problem,)))
            continue
        try:
            record = TrafficRecord.model_validate(_blank_is_absent(raw))
        except ValidationError as exc:
            parsed.errors.append(RowError(line, tuple(_describe(error) for error in exc.errors())))
            continue
        problems = _inconsistencies(record)
        if problems:
            parsed.errors.append(RowError(line, problems))
        else:
            parsed.records.append(record)
    return parsed


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any], tuple[str, str] | None]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [name for name in REQUIRED_FIELDS if name not in header]
        if missing:
            raise InventoryInputError(f"{path}: line 1: the CSV header lacks required column(s) {', '.join(missing)} "
                                      f"(it has {', '.join(header) or 'nothing'})")
        reader.fieldnames = header
        for row in reader:
            extra = row.pop(None, None)
            if extra:
                yield reader.line_num, row, ("(row)", f"{len(header) + len(extra)} values for the header's "
                                                      f"{len(header)} columns")
            else:
                yield reader.line_num, row, None


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any], tuple[str, str] | None]]:
    with path.open(encoding="utf-8-sig") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, {}, ("(json)", f"not valid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}")
                continue
            if not isinstance(value, dict):
                yield line, {}, ("(json)", f"expected a JSON object, got {type(value).__name__}")
                continue
            yield line, value, None


def _inconsistencies(record: TrafficRecord) -> tuple[tuple[str, str], ...]:
    """Checks across fields, reported against the field that cannot be right."""
    if record.prefix_tokens is not None and record.prefix_tokens * record.requests > record.prompt_tokens:
        per = f" x {record.requests} requests" if record.requests > 1 else ""
        return (("prefix_tokens", f"{record.prefix_tokens}{per} exceeds the row's {record.prompt_tokens} prompt "
                                  f"tokens (input + cache creation + cache read)"),)
    return ()


def _blank_is_absent(raw: dict[str, Any]) -> dict[str, Any]:
    """An empty cell (or JSON null) means 'not given': the field's default, or 'missing' if it is required."""
    return {key: value for key, value in raw.items()
            if not (value is None or (isinstance(value, str) and not value.strip()))}


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    name = ".".join(str(part) for part in error["loc"]) or "(row)"
    if error["type"] == "missing":
        return name, "required, but missing or empty"
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and not isinstance(error["input"], dict):
        message += f" (got {error['input']!r})"
    return name, message
