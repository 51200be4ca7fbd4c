"""docs/workloads.md is what the definition model says, and the model describes every field."""

from __future__ import annotations

from pydantic import BaseModel

from nightshift import cli
from nightshift.paths import PROJECT_ROOT
from nightshift.workloads import reference
from nightshift.workloads.definition import Workload

DOC = PROJECT_ROOT / "docs" / "workloads.md"


def test_the_committed_reference_is_current():
    assert DOC.read_text(encoding="utf-8") == reference.render(), (
        f"docs/workloads.md is stale: the workload definition model changed. Regenerate it with "
        f"`{reference.REGENERATE}` (from the repository root) and commit the result")


def undescribed(model: type[BaseModel], path: str = "") -> list[str]:
    missing = []
    for name, field in model.model_fields.items():
        here = f"{path}{field.alias or name}"
        if not (field.description or "").strip():
            missing.append(here)
        if (inner := reference._model_of(field.annotation)) is not None:
            missing += undescribed(inner, here + ".")
    return missing


def test_every_field_of_the_definition_model_has_a_description():
    assert undescribed(Workload) == [], "add Field(description=...) to these fields, then regenerate the reference"


def test_the_reference_lists_every_section_and_field_with_type_default_and_description():
    text = reference.render()
    for section in ("## `source`", "## `prompt`", "## `output`", "## `destination`", "## `destination.asset`",
                    "## `batch`", "## `migration`"):
        assert section in text
    row = next(line for line in text.splitlines() if line.startswith("| `max_requests_per_batch` |"))
    assert row.split(" | ")[1:5] == ["integer", "no", "`100000`", "> 0, ≤ 100000"]
    assert "Requests per batch at most" in row
    assert "| `schema` |" in text and "| `json_schema` |" not in text  # the YAML key, not the attribute


def test_the_command_writes_the_reference_and_check_says_when_it_is_stale(tmp_path, capsys):
    target = tmp_path / "workloads.md"
    target.write_text("an old reference\n")
    assert cli.main(["workloads", "reference", "--check", "--output", str(target)]) == 1
    assert f"{target} is stale: run `nightshift workloads reference`" in capsys.readouterr().err
    assert cli.main(["workloads", "reference", "--output", str(target)]) == 0
    assert target.read_text() == reference.render()
    assert cli.main(["workloads", "reference", "--check", "--output", str(target)]) == 0
