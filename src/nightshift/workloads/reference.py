"""The workload file reference (``docs/workloads.md``), generated from the definition model itself.

Every field of :class:`~nightshift.workloads.definition.Workload` and of the sections it nests is
listed with its YAML key, type, whether it is required, its default, its limits and its
``Field(description=...)``. Regenerate with ``nightshift workloads reference``; a unit test fails
when the committed file differs from what the model says.
"""

from __future__ import annotations

import json
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from nightshift.workloads.definition import Workload

REGENERATE = "nightshift workloads reference"

#: Fields the loader fills in before validation, so a YAML file need not give them.
FILLED_AT_LOAD = {"instructions": "no (read from `prompt.instructions_file`)"}

INTRO = f"""\
# Workload files: field reference

<!-- Generated from nightshift.workloads.definition by `{REGENERATE}`. Do not edit by hand:
     change the model's Field(description=...) and regenerate. -->

A workload is one YAML file in a workloads folder (`[nightshift] workloads_folder`, several folders
separated by commas; default: `workloads/` beside the DAGs folder).

- **The file is named for the workload**: `name: ticket_classification` lives in
  `ticket_classification.yaml`. A file whose `name:` differs from its file name (a copy, say) is
  set aside with an error naming both, and gets a failing DAG of its own
  (`nightshift_batch_<file name>`); the workload it copies keeps its DAGs, untouched. A name found in
  two folders stays with the file of the earlier folder; the later one is set aside
  (`nightshift_batch_<name>__folder<n>`), its error naming both files.
- **Paths resolve relative to the YAML file** (`prompt.instructions_file`).
- **Each workload may run on its own schedule**: `schedule` and `timezone` below; left out, the
  `[nightshift] schedule` and `timezone` settings apply.
- A definition that does not load fails only its own DAG, naming the file and the field.
"""


def render() -> str:
    """The whole reference, as Markdown."""
    sections = [_section("Top level", Workload, "", with_doc=False)]
    for path, model in _nested(Workload, ""):
        sections.append(_section(f"`{path}`", model, path))
    return INTRO + "\n" + "\n".join(sections)


def write(target: Path) -> bool:
    """Write the reference to ``target``; True when it changed."""
    text = render()
    if target.exists() and target.read_text(encoding="utf-8") == text:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return True


def _section(title: str, model: type[BaseModel], path: str, *, with_doc: bool = True) -> str:
    lines = [f"## {title}", ""]
    if with_doc and (doc := _doc(model)):
        lines += [doc, ""]
    lines += ["| Field | Type | Required | Default | Limits | Description |",
              "|---|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        nested = _model_of(field.annotation)
        described = field.description or "**(no description)**"
        if nested is not None:
            described += f" See [`{_join(path, key)}`](#{_anchor(_join(path, key))})."
        required = FILLED_AT_LOAD.get(_join(path, key)) or ("yes" if field.is_required() else "no")
        cells = (f"`{key}`", _type(field.annotation), required,
                 _default(field), _limits(field), described)
        lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _nested(model: type[BaseModel], path: str) -> list[tuple[str, type[BaseModel]]]:
    """Every section below ``model``, depth first, in field order."""
    found = []
    for name, field in model.model_fields.items():
        if (inner := _model_of(field.annotation)) is not None:
            here = _join(path, field.alias or name)
            found += [(here, inner), *_nested(inner, here)]
    return found


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _type(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return " or ".join(f"`{value}`" for value in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " or ".join(f"`{member.value}`" for member in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if origin is list:
        return f"list of {_type(typing.get_args(annotation)[0])}"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return "mapping" if value is Any else f"mapping of {_type(key)} to {_type(value)}"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(annotation, str(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return ""
    value = field.default
    if value is PydanticUndefined:
        value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(its fields' defaults)"
    if isinstance(value, Enum):
        value = value.value
    return f"`{json.dumps(value) if not isinstance(value, str) else value}`" if value != "" else '`""`'


def _limits(field: FieldInfo) -> str:
    words = []
    for item in field.metadata:
        if isinstance(item, annotated_types.Gt):
            words.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Ge):
            words.append(f"≥ {item.ge}")
        elif isinstance(item, annotated_types.Lt):
            words.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.Le):
            words.append(f"≤ {item.le}")
        elif isinstance(item, annotated_types.MinLen):
            words.append(f"at least {item.min_length} {'character' if field.annotation is str else 'entry'}"
                         f"{'s' if item.min_length != 1 else ''}")
        elif isinstance(item, annotated_types.MaxLen):
            words.append(f"at most {item.max_length}")
        elif pattern := getattr(item, "pattern", None):
            words.append(f"matches `{pattern}`")
    return ", ".join(words)


def _doc(model: type[BaseModel]) -> str:
    doc = model.__doc__ or ""
    if doc == BaseModel.__doc__ or not doc.strip():
        return ""
    return " ".join(line.strip() for line in doc.strip().split("\n\n")[0].splitlines())


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _anchor(path: str) -> str:
    return path.replace(".", "")
