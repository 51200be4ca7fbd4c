"""The benchmark's bookkeeping: measured rows, their targets, the table, the JSON and the verdict.

A row is one measurement beside its baseline from the same run. Its target applies to the
ratio (``value / baseline``, or ``baseline / value`` for "× faster than" rows) or, for an
absolute limit, to the value itself. Rows without a target are context (a floor, a count).
A row whose measurement raised counts as a miss, so a broken bench cannot pass.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

#: The benchmark's row groups, in the order they run and print.
GROUPS = ("land", "memory", "submit", "collect", "wait", "night", "cost")


@dataclass(frozen=True)
class Target:
    op: Literal["<=", ">="]
    limit: float
    on: Literal["ratio", "value"] = "ratio"

    def met(self, number: float | None) -> bool:
        if number is None or math.isnan(number):
            return False
        return number <= self.limit if self.op == "<=" else number >= self.limit

    def describe(self, unit: str = "") -> str:
        sign = "≤" if self.op == "<=" else "≥"
        return f"{sign} {self.limit:g}{'×' if self.on == 'ratio' else ' ' + unit}".rstrip()


@dataclass
class Row:
    group: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: Target | None = None
    note: str = ""
    error: str | None = None

    @property
    def checked(self) -> float | None:
        if self.target is None:
            return None
        return self.ratio if self.target.on == "ratio" else self.value

    @property
    def passed(self) -> bool | None:
        """None for context rows; False for a miss or a measurement that failed."""
        if self.error is not None:
            return False
        if self.target is None:
            return None
        return self.target.met(self.checked)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = self.target.describe(self.unit) if self.target else None
        data["passed"] = self.passed
        return data


def ratio_row(group: str, name: str, value: float, baseline: float, unit: str, *, baseline_name: str,
              target: Target | None = None, faster: bool = False, note: str = "") -> Row:
    """A row whose ratio is ``value / baseline`` (or ``baseline / value`` when ``faster``)."""
    if faster:
        ratio = baseline / value if value > 0 else math.inf
    else:
        ratio = value / baseline if baseline > 0 else math.inf
    return Row(group, name, value, unit, baseline, baseline_name, ratio, target, note)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def failed(self, group: str, name: str, error: BaseException | str, target: Target | None = None) -> Row:
        """Record a measurement that could not be made: it counts as a miss."""
        message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return self.add(Row(group, name, None, "", target=target, error=message[:500]))

    @property
    def misses(self) -> list[Row]:
        return [row for row in self.rows if row.passed is False]

    @property
    def passed(self) -> bool:
        return not self.misses

    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "misses": [f"{r.group}: {r.name}" for r in self.misses],
            "seconds": round(time.time() - self.started, 1),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
            "context": self.context,
            "rows": [row.as_dict() for row in self.rows],
        }

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")
        return path

    def print(self, console=None) -> None:
        from rich.console import Console
        from rich.table import Table

        console = console or Console(width=160)
        table = Table(title="Nightshift pipeline benchmark", title_justify="left")
        for column, justify in (("group", "left"), ("measurement", "left"), ("value", "right"),
                                ("baseline", "right"), ("ratio", "right"), ("target", "right"), ("", "left")):
            table.add_column(column, justify=justify)
        for row in self.rows:
            verdict = {True: "[green]pass[/]", False: "[red]MISS[/]", None: ""}[row.passed]
            if row.error:
                table.add_row(row.group, row.name, "—", "", "", row.target.describe(row.unit) if row.target else "",
                              f"[red]ERROR[/] {row.error}")
                continue
            baseline = f"{_number(row.baseline, row.unit)} {row.baseline_name}".strip() if row.baseline is not None else ""
            table.add_row(row.group, row.name + (f" [dim]({row.note})[/]" if row.note else ""),
                          _number(row.value, row.unit), baseline,
                          f"{row.ratio:.2f}×" if row.ratio is not None else "",
                          row.target.describe(row.unit) if row.target else "", verdict)
        console.print(table)
        summary = self.as_dict()
        if self.passed:
            console.print(f"[green]every target met[/] ({summary['seconds']:.0f} s)")
        else:
            console.print(f"[red]{len(self.misses)} target(s) missed:[/] " + "; ".join(summary["misses"]))


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "s":
        return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "$":
        return f"${value:.4f}"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit in ("", "count"):
        return f"{value:,.0f}"
    return f"{value:,.1f} {unit}"
