"""One workload, as declared in ``<workloads folder>/<name>.yaml``.

A definition says where pending requests come from, how a source row becomes Messages API
params (stable instructions first, per-item text after), how the reply is validated, and
which destination table and columns receive it. Both delivery paths read the same
definition, which is what makes their outputs comparable row for row.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nightshift.backends.registry import DEFAULT_BACKEND, backend_names
from nightshift.model_table import ModelCapabilities
from nightshift.workloads.schedule import FROM_DEPLOYMENT, check_schedule, check_timezone
from nightshift.workloads.shape import Delivery, RequestShape, Thinking, UnsupportedRequest, request_shape

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
QUALIFIED_TABLE = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


class WorkloadDefinitionError(ValueError):
    """A workload file that cannot be used; the message names the workload, file and field."""

    def __init__(self, message: str, workload: str | None = None) -> None:
        super().__init__(message)
        self.workload = workload


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where each request's input row is read from."""

    table: str = Field(
        pattern=QUALIFIED_TABLE.pattern,
        description="The source table, schema-qualified and lower-case (`app.support_tickets`).")
    key: str = Field(
        pattern=IDENTIFIER.pattern,
        description="The column that identifies a row; queued requests name rows by it.")
    columns: list[str] = Field(
        min_length=1,
        description="The columns read for each row; `prompt.item_template` may use these and `key`.")
    required_columns: list[str] = Field(
        default=[],
        description="Columns of `columns` that must hold a value: a row with one of them NULL or empty "
                    "fails as `invalid_input` without an API call.")
    timestamp_column: str | None = Field(
        default=None, pattern=IDENTIFIER.pattern,
        description="The column that dates a row. Needed by the backfill DAG, which reads the rows of each "
                    "data interval by this column.")

    @field_validator("columns", "required_columns")
    @classmethod
    def _identifiers(cls, names: list[str]) -> list[str]:
        for name in names:
            if not IDENTIFIER.match(name):
                raise ValueError(f"{name!r} is not a plain lower-case column name")
        return names

    @model_validator(mode="after")
    def _required_are_columns(self) -> Source:
        unknown = sorted(set(self.required_columns) - set(self.columns))
        if unknown:
            raise ValueError(f"required_columns {unknown} are not listed in columns")
        return self


class Prompt(_Strict):
    """How a row becomes a request: the same instructions for every item, then its own text."""

    instructions_file: str = Field(
        description="The instructions (the system prompt, the same for every item, so it is cached): a file "
                    "path relative to the workload's YAML file.")
    item_template: str = Field(
        min_length=1,
        description="The user message of one item: a format string over `source.columns` and `source.key` "
                    "(`Subject: {subject}`).")
    cache_ttl: Literal["5m", "1h"] = Field(
        default="1h",
        description="How long the cached instructions live: `5m` or `1h` (a batch can run for hours, so "
                    "`1h` lets more of its items read the cache).")


class OutputType(StrEnum):
    JSON = "json"  # a JSON object valid against ``schema``; destination.columns map its fields
    TEXT = "text"  # the reply's text is the answer; destination.columns maps one column to ``text``


#: The output field a plain-text output's value is known by in destination.columns.
TEXT_FIELD = "text"


class Output(_Strict):
    """What a valid answer is: a JSON object valid against a schema, or plain text."""

    type: OutputType = Field(
        default=OutputType.JSON,
        description="`json` (an object valid against `schema`, whose fields `destination.columns` map) or "
                    "`text` (the reply's text is the answer: no schema and no tool are sent, and "
                    "`destination.columns` maps one column to the field `text`).")
    tool_name: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z0-9_-]{1,64}$",
        description="The tool's name, when the answer is asked for through a forced tool call (json outputs: "
                    "required).")
    tool_description: str = Field(
        default="",
        description="The tool's description (part of the cached prefix).")
    json_schema: dict[str, Any] | None = Field(
        default=None,
        alias="schema",
        description="The JSON Schema (draft 2020-12) the answer must satisfy; it must describe an object, "
                    "whose fields `destination.columns` map (json outputs: required; text outputs: none).")
    #: How the answer is asked for: ``auto`` (structured outputs where the model has them, else a
    #: forced tool), ``json_schema`` or ``forced_tool``; checked against the model's capabilities.
    delivery: Delivery = Field(
        default=Delivery.AUTO,
        description="How the answer is asked for: `auto` (structured outputs where the model has them, else "
                    "a forced tool), `json_schema` or `forced_tool`; checked against the model's "
                    "capabilities. A text output is always `text` (no tool, no `output_config.format`).")
    max_chars: int | None = Field(
        default=None,
        gt=0,
        description="Text outputs only: a longer reply fails as `invalid_output` (a varchar(n) destination "
                    "column needs it, at most n).")

    @model_validator(mode="before")
    @classmethod
    def _text_delivers_text(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("type") == OutputType.TEXT and "delivery" not in raw:
            return {**raw, "delivery": Delivery.TEXT}
        return raw

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
        if schema.get("type") != "object":
            raise ValueError("the output schema must describe an object (type: object); for a plain-text "
                             "answer use output: {type: text}")
        return schema

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> Output:
        if self.type is OutputType.TEXT:
            given = [name for name, value in (("schema", self.json_schema), ("tool_name", self.tool_name),
                                              ("tool_description", self.tool_description or None)) if value]
            if given:
                raise ValueError(f"a text output takes no {', '.join(given)}: the reply's text is the answer")
            if self.delivery is not Delivery.TEXT:
                raise ValueError(f"a text output is delivered as text, not {self.delivery}")
            return self
        missing = [name for name, value in (("schema", self.json_schema), ("tool_name", self.tool_name))
                   if not value]
        if missing:
            raise ValueError(f"a json output needs {' and '.join(missing)} "
                             "(or set type: text for a plain-text answer)")
        if self.delivery is Delivery.TEXT:
            raise ValueError("delivery text is for type: text outputs")
        if self.max_chars is not None:
            raise ValueError("max_chars is for type: text outputs (limit a JSON field with maxLength)")
        return self

    @property
    def is_text(self) -> bool:
        return self.type is OutputType.TEXT


class AssetRef(_Strict):
    """The Airflow Asset both delivery paths publish once they have written."""

    name: str = Field(
        description="The Asset's name (what downstream DAGs schedule on).")
    uri: str = Field(
        description="The Asset's URI.")


class DeliveryColumns(_Strict):
    """Where a destination row's delivery metadata goes: each a column of the destination table, or
    null for none. Whatever has no column is kept in the ledger (``nightshift.deliveries``) all the same."""

    model: str | None = Field(
        default=None, pattern=IDENTIFIER.pattern,
        description="The column that receives the model that answered, or null for none.")
    prompt_version: str | None = Field(
        default=None, pattern=IDENTIFIER.pattern,
        description="The column that receives the prompt version, or null for none.")
    request_id: str | None = Field(
        default=None, pattern=IDENTIFIER.pattern,
        description="The column that receives the queue request's id (bigint), or null for none.")
    written_at: str | None = Field(
        default=None, pattern=IDENTIFIER.pattern,
        description="The column that receives the time a row was written, or null for none.")

    def mapped(self) -> dict[str, str]:
        """``{what: column}`` for the metadata that has a column."""
        return {what: column for what, column in self.model_dump().items() if column is not None}


class Destination(_Strict):
    """Where answers are written: the tables and columns the streaming path writes."""

    table: str = Field(
        pattern=QUALIFIED_TABLE.pattern,
        description="The destination table, schema-qualified and lower-case.")
    key: str = Field(
        pattern=IDENTIFIER.pattern,
        description="The destination's column holding the source key (one row per key).")
    columns: dict[str, str] = Field(
        min_length=1,
        description="`column: output field`: which answer field each destination column receives (each "
                    "field must be required by `output.schema`; a text output's field is `text`).")
    source_columns: dict[str, str] = Field(
        default={},
        description="`column: source column`: destination columns copied from the source row as it is when "
                    "the row is written (each a column of `source.columns` or `source.key`), on both paths.")
    delivery_columns: DeliveryColumns | None = Field(
        default=None,
        description="Which columns receive `model`, `prompt_version`, `request_id` and `written_at`. Left "
                    "out: the columns `model`, `prompt_version` and `request_id`, and `written_at_column`. "
                    "Given: exactly what it maps (`{}` for a table with none of them); the ledger keeps "
                    "all four per row either way.")
    written_at_column: str | None = Field(
        default=None,
        pattern=IDENTIFIER.pattern,
        description="Deprecated: the same as `delivery_columns.written_at`.")
    asset: AssetRef = Field(
        description="The Asset published after each night's writes.")

    @field_validator("columns", "source_columns")
    @classmethod
    def _column_names(cls, columns: dict[str, str]) -> dict[str, str]:
        for column in columns:
            if not IDENTIFIER.match(column):
                raise ValueError(f"{column!r} is not a plain lower-case column name")
        return columns

    @model_validator(mode="after")
    def _distinct_columns(self) -> Destination:
        if self.written_at_column and self.delivery_columns and self.delivery_columns.written_at:
            raise ValueError("written_at_column and delivery_columns.written_at both given: keep "
                             "delivery_columns.written_at (written_at_column is its deprecated alias)")
        seen = {self.key: "the key", **{column: f"destination.columns.{column}" for column in self.columns}}
        for column in self.source_columns:
            if column in seen:
                raise ValueError(f"source_columns.{column} names column {column!r}, "
                                 f"which is already {seen[column]}")
            seen[column] = f"source_columns.{column}"
        for what, column in self.delivery.mapped().items():
            if column in seen:
                raise ValueError(f"delivery_columns.{what} names column {column!r}, "
                                 f"which is already {seen[column]}")
            seen[column] = f"delivery_columns.{what}"
        return self

    @property
    def delivery(self) -> DeliveryColumns:
        """The delivery columns in force (see ``delivery_columns``)."""
        if self.delivery_columns is None:
            return DeliveryColumns(model="model", prompt_version="prompt_version", request_id="request_id",
                                   written_at=self.written_at_column)
        if self.written_at_column:
            return self.delivery_columns.model_copy(update={"written_at": self.written_at_column})
        return self.delivery_columns


class BatchSettings(_Strict):
    """How the batch path splits, waits and retries. The caps default to the API's limits."""

    max_requests_per_batch: int = Field(
        default=100_000, gt=0, le=100_000,
        description="Requests per batch at most (the API's limit is 100,000).")
    max_batch_bytes: int = Field(
        default=256_000_000, gt=1_000, le=256_000_000,
        description="Bytes of request bodies per batch at most (the API's limit is 256 MB).")
    retry_rounds: int = Field(
        default=2, ge=0, le=10,
        description="Rounds that resubmit the items that failed transiently (errored, expired); each is a "
                    "`retry_N` task group.")
    validation_retries: int = Field(
        default=0, ge=0, le=1,
        description="Rounds in which an answer that fails validation (`invalid_output`) is asked for again.")
    poll_interval_seconds: float = Field(
        default=60.0, gt=0,
        description="Seconds between polls of a running batch.")
    max_poll_interval_seconds: float = Field(
        default=600.0, gt=0,
        description="The longest wait between polls while failing polls back off.")
    deadline_hours: float = Field(
        default=20.0, gt=0, le=72,
        description="Hours after collect at which unfinished batches are cancelled and their items closed.")
    max_consecutive_poll_failures: int = Field(
        default=10, ge=1,
        description="Polls in a row that may fail before the wait fails.")
    warmup: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Send one full-price request that writes the prompt cache before the batch: `auto` when "
                    "the expected saving exceeds its cost, `always` or `never`.")
    expected_cache_hit_rate: float = Field(
        default=0.5, ge=0, le=1,
        description="The share of a batch's items expected to read the cache without a warm-up (what "
                    "`warmup: auto` and the estimates assume).")


class MigrationSettings(_Strict):
    """How shadow (batch) output is judged against the streaming output before a switch."""

    min_agreement: float = Field(
        default=0.98, ge=0, le=1,
        description="The share of keys on which shadow (batch) and streaming answers must agree before "
                    "`nightshift switch --to batch` is allowed, and that the low end of a model trial's 95% "
                    "interval must reach before `nightshift switch --model` is.")
    text_similarity: float = Field(
        default=0.9, ge=0, le=1,
        description="How similar two free-text answers must be (0 to 1) to count as agreeing.")
    min_keys: int = Field(
        default=200, ge=1,
        description="How many keys must have both a streaming and a shadow answer before the switch to batch "
                    "is allowed: an agreement on fewer keys is too weak to rest on.")


class EscalateOn(_Strict):
    """When a cascade model's reply goes to the next model instead of the destination."""

    invalid_output: bool = Field(
        default=False,
        description="A reply that fails validation (`invalid_output`) goes to the next model (without it, it "
                    "fails or is asked for again as `batch.validation_retries` says).")
    values: dict[str, list[str | int | float | bool]] = Field(
        default={},
        description="`field: [values]`: a valid reply whose enum field holds one of these values "
                    "(`label: [other]`) goes to the next model. Each field an enum of the output schema, "
                    "each value in it.")
    below: dict[str, float] = Field(
        default={},
        description="`field: threshold`: a valid reply whose number field is under the threshold "
                    "(`confidence: 0.6`) goes to the next model. Each field a number or integer of the "
                    "output schema.")

    @property
    def any(self) -> bool:
        return bool(self.invalid_output or self.values or self.below)


class Cascade(_Strict):
    """Models tried in order: round 0 runs on the first; a reply that meets an `escalate_on` rule goes to
    the next model in the next round; the last model's answer lands whatever it says."""

    models: list[str] = Field(
        min_length=2,
        description="The models in the order they are tried, cheapest first, at least two distinct ones; "
                    "each must run the workload as a file naming it would (`model` is the first).")
    escalate_on: EscalateOn = Field(
        description="When a reply goes to the next model: `invalid_output`, `values`, `below`.")

    def next_model(self, model: str) -> str | None:
        """The model after ``model`` (None after the last one)."""
        at = self.models.index(model)
        return self.models[at + 1] if at + 1 < len(self.models) else None

    @property
    def last(self) -> str:
        return self.models[-1]


SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")


class Workload(_Strict):
    """A validated workload definition. Build with :func:`load_workload_file`."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,40}$",
        description="The workload's name: lower case, digits and `_`, up to 41 characters. Its file is "
                    "named for it (`<name>.yaml`); DAG ids and the queue use it.")
    description: str = Field(
        default="",
        description="One line shown on the workload's DAGs.")
    schedule: str | None = Field(
        default=FROM_DEPLOYMENT,
        description="When the nightly DAGs (batch and streaming) run: a five-field cron expression (`0 2 * * *`), a "
                    "preset (`@daily`, `@hourly`, `@weekly`, `@monthly`, `@quarterly`, `@yearly`), or null for manual "
                    "runs only. `deployment`: the `[nightshift] schedule` setting. The backfill DAG covers the same "
                    "intervals (a manual-only workload's backfill uses the deployment's schedule).")
    timezone: str = Field(
        default=FROM_DEPLOYMENT,
        description="The IANA time zone `schedule` is read in (`Europe/Paris`); it also sets where a data "
                    "interval starts and ends. `deployment`: the `[nightshift] timezone` setting.")
    backend: str = Field(
        default=DEFAULT_BACKEND,
        description="Which batch API runs the workload's nights (a name in `nightshift.backends.registry`).")
    model: str = Field(
        min_length=1,
        description="The model id; it must be in Nightshift's model table and price table. May be left out "
                    "when `cascade` is given: it is then the first cascade model (given, it must be).")
    cascade: Cascade | None = Field(
        default=None,
        description="Models tried in order, and when a reply goes to the next one (the batch path: each "
                    "escalation takes a retry round, as a transient retry does, so `batch.retry_rounds` must "
                    "be at least the models after the first; an item out of rounds fails "
                    "`escalated_after_retries`; the streaming path tries them in turn within one request). "
                    "Each destination row records the model that answered it and that model's prompt version.")
    max_tokens: int = Field(
        gt=0, le=128_000,
        description="The budget thinking and the answer share (thinking tokens are output tokens); checked "
                    "at load against what Nightshift plans for thinking at the workload's effort.")
    thinking: Thinking = Field(
        default=Thinking.DEFAULT,
        description="`default` (what the model does when not told), `adaptive`, or `off`.")
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = Field(
        default=None,
        description="`output_config.effort`; null sends none and the model's default is in force.")
    request_overrides: dict[str, Any] = Field(
        default={},
        description="Params merged into every request as they are (an escape hatch for what Nightshift does "
                    "not model). Nothing checks them at load; the preflight before the first batch does.")
    source: Source = Field(
        description="Where each request's input row is read from.")
    prompt: Prompt = Field(
        description="How a row becomes a request.")
    output: Output = Field(
        description="What a valid answer is.")
    destination: Destination = Field(
        description="Where answers are written.")
    instructions: str = Field(
        min_length=1,
        description="The instructions text. Normally left out: it is read from `prompt.instructions_file`; "
                    "given here, it is used instead.")
    failure_threshold: float = Field(
        default=0.05, ge=0, le=1,
        description="The share of a night's items that may fail before the night needs attention (the "
                    "notifier is called).")
    batch: BatchSettings = Field(
        default=BatchSettings(),
        description="How the batch path splits, waits and retries.")
    migration: MigrationSettings = Field(
        default=MigrationSettings(),
        description="How shadow (batch) output is judged against the streaming output.")

    @field_validator("backend")
    @classmethod
    def _a_known_backend(cls, backend: str) -> str:
        if backend not in backend_names():
            raise ValueError(f"unknown batch backend {backend!r}; known backends: {', '.join(backend_names())}")
        return backend

    @field_validator("schedule")
    @classmethod
    def _a_cron_or_preset(cls, schedule: str | None) -> str | None:
        return schedule if schedule in (None, FROM_DEPLOYMENT) else check_schedule(schedule)

    @field_validator("timezone")
    @classmethod
    def _a_known_zone(cls, zone: str) -> str:
        return zone if zone == FROM_DEPLOYMENT else check_timezone(zone)

    @field_validator("model")
    @classmethod
    def _in_the_model_table(cls, model: str) -> str:
        from nightshift.model_table import model_table

        model_table().capabilities(model)  # UnknownModel (a ValueError) names the table and what it knows
        return model

    @model_validator(mode="before")
    @classmethod
    def _model_from_cascade(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "model" not in raw and isinstance(raw.get("cascade"), dict):
            models = raw["cascade"].get("models")
            if isinstance(models, list) and models and isinstance(models[0], str):
                return {**raw, "model": models[0]}
        return raw

    @model_validator(mode="before")
    @classmethod
    def _no_sampling(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            for name in SAMPLING_PARAMETERS:
                if name in raw:
                    raise ValueError(
                        f"{name} is not a workload setting: the API rejects sampling parameters ({raw.get('model')} "
                        "refuses a non-default temperature, top_p or top_k, and anthropic-version 2026-10-21, which "
                        "the SDK sends, removed them for every model). Use effort to trade depth for cost")
        return raw

    @model_validator(mode="after")
    def _fits_the_model(self) -> Workload:
        from nightshift.model_table import model_table

        table = model_table()
        try:
            shape = self.table_shape
        except UnsupportedRequest as exc:
            raise ValueError(str(exc)) from None
        if shape.thinks:
            thinking = table.thinking_allowance(shape.effort_in_force)
            needed = thinking + table.answer_allowance_tokens
            if self.max_tokens < needed:
                raise ValueError(
                    f"max_tokens {self.max_tokens} leaves no room for the answer: {self.model} thinks at effort "
                    f"{shape.effort_in_force}, for which Nightshift plans {thinking} thinking tokens (they share "
                    f"max_tokens with the answer), plus {table.answer_allowance_tokens} for the answer. Raise max_tokens "
                    f"to at least {needed}, lower effort, or set thinking: off")
        return self

    @property
    def table_shape(self) -> RequestShape:
        """The request shape by Nightshift's model table (a run may correct it from the Models API)."""
        from nightshift.model_table import model_table

        return self.shape_for(model_table().capabilities(self.model))

    def shape_for(self, caps: ModelCapabilities) -> RequestShape:
        return request_shape(caps, delivery=self.output.delivery, thinking=self.thinking, effort=self.effort)

    @model_validator(mode="after")
    def _consistent(self) -> Workload:
        placeholders = _placeholders(self.prompt.item_template)
        known = set(self.source.columns) | {self.source.key}
        if unknown := sorted(placeholders - known):
            raise ValueError(
                f"prompt.item_template uses {unknown}, which are not source.columns or source.key"
            )
        for where, text in (("instructions", self.instructions), ("output.tool_description", self.output.tool_description)):
            if per_item := sorted(_placeholders(text) & known):
                raise ValueError(
                    f"the cached prefix would differ between items: {where} renders per-item value(s) "
                    f"{', '.join('{' + p + '}' for p in per_item)}; a prefix that varies is never read from the "
                    "cache (cache busting). Move per-item values into prompt.item_template"
                )
        for column, source_column in self.destination.source_columns.items():
            if source_column not in known:
                raise ValueError(f"destination.source_columns.{column} copies source column "
                                 f"{source_column!r}, which is not source.key or in source.columns "
                                 "(add it to source.columns)")
        if self.output.is_text:
            if list(self.destination.columns.values()) != [TEXT_FIELD]:
                raise ValueError(f"a text output fills one column: destination.columns must map exactly one "
                                 f"column to {TEXT_FIELD!r} (it maps {self.destination.columns})")
            return self
        properties = self.output.json_schema.get("properties", {})
        required = set(self.output.json_schema.get("required", []))
        for column, field in self.destination.columns.items():
            if field not in properties:
                raise ValueError(
                    f"destination.columns.{column} maps output field {field!r}, "
                    f"which the output schema does not define (it has {sorted(properties)})"
                )
            if field not in required:
                raise ValueError(
                    f"destination.columns.{column} maps output field {field!r}, which the output schema does not "
                    f"require: a valid reply without it would have nothing to write (add it to output.schema.required)"
                )
        return self

    @model_validator(mode="after")
    def _cascade_fits(self) -> Workload:
        cascade = self.cascade
        if cascade is None:
            return self
        if self.model != cascade.models[0]:
            raise ValueError(f"model {self.model} is not cascade.models[0] ({cascade.models[0]}): a "
                             "cascade starts on the workload's model (leave model out to take the first "
                             "cascade model)")
        repeated = sorted({m for m in cascade.models if cascade.models.count(m) > 1})
        if repeated:
            raise ValueError(f"cascade.models names {', '.join(repeated)} more than once: each model is "
                             "tried once, in order")
        for at, model in enumerate(cascade.models[1:], start=1):
            try:
                self._alone_on(model)
            except ValueError as exc:
                raise ValueError(f"cascade.models[{at}]: {exc}") from None
        rules = cascade.escalate_on
        if not rules.any:
            raise ValueError("cascade.escalate_on names no rule (invalid_output, values or below): nothing "
                             "would ever reach the next model")
        if self.output.is_text and (rules.values or rules.below):
            raise ValueError("cascade.escalate_on: a text output escalates only on invalid_output (values "
                             "and below name fields of a json output)")
        properties = (self.output.json_schema or {}).get("properties", {})
        for rule, fields in (("values", rules.values), ("below", rules.below)):
            for name in fields:
                if name not in properties:
                    raise ValueError(f"cascade.escalate_on.{rule}.{name}: the output schema has no field "
                                     f"{name!r} (it has {sorted(properties)})")
        for name, values in rules.values.items():
            enum = properties[name].get("enum")
            if enum is None:
                raise ValueError(f"cascade.escalate_on.values.{name}: field {name!r} is not an enum of the "
                                 "output schema (values escalates on an enum's members)")
            if unknown := [v for v in values if v not in enum]:
                raise ValueError(f"cascade.escalate_on.values.{name}: {unknown} are not in the field's enum "
                                 f"{enum}")
        for name in rules.below:
            kinds = properties[name].get("type")
            kinds = {kinds} if isinstance(kinds, str) else set(kinds or ())
            if not kinds or not kinds <= {"number", "integer", "null"} or kinds == {"null"}:
                raise ValueError(f"cascade.escalate_on.below.{name}: field {name!r} is not a number or "
                                 f"integer (its type is {properties[name].get('type')!r})")
        needed = len(cascade.models) - 1
        if self.batch.retry_rounds < needed:
            raise ValueError(f"batch.retry_rounds {self.batch.retry_rounds} is fewer than the {needed} "
                             f"escalation(s) cascade.models needs (each escalation takes a round): set "
                             f"retry_rounds to at least {needed}")
        return self

    def with_model(self, model: str) -> Workload:
        """The same workload on ``model``, checked as a file naming that model would be (the model
        table, the request shape, max_tokens against its thinking); a ``ValueError`` says why not.
        A cascade workload on another model is that model alone (its cascade does not carry over)."""
        if model == self.model:
            return self
        return self._alone_on(model)

    def _alone_on(self, model: str) -> Workload:
        raw = self.model_dump(by_alias=True, exclude_defaults=True)
        raw.pop("cascade", None)
        try:
            return Workload.model_validate({**raw, "model": model})
        except ValidationError as exc:
            problems = "; ".join(err["msg"].removeprefix("Value error, ") for err in exc.errors())
            raise ValueError(f"workload {self.name!r} cannot run on {model}: {problems}") from None

    @property
    def models(self) -> list[str]:
        """The models this workload's items may be sent to, in cascade order (its model alone without one)."""
        return list(self.cascade.models) if self.cascade else [self.model]

    def on_model(self, model: str) -> Workload:
        """What one model of the cascade runs: this workload on ``model`` alone, built once per workload
        object and model (the request params are cached per workload object). Its ``prompt_version`` is
        what the rows that model answers record."""
        if self.cascade is None and model == self.model:
            return self
        key = (id(self), model)
        cached = _on_model.get(key)
        if cached is None or cached[0] is not self:
            if model not in self.models:
                raise ValueError(f"workload {self.name!r} does not run on {model} "
                                 f"(its models: {self.models})")
            cached = _on_model[key] = (self, self._alone_on(model))
        return cached[1]

    @property
    def prompt_version(self) -> str:
        """A digest of everything that changes the output, recorded on every destination row.

        Not cached: ``model_copy(update=...)`` would carry a cached value over to a revised copy.
        """
        material = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "instructions": self.instructions,
            "item_template": self.prompt.item_template,
            "tool": [self.output.tool_name, self.output.tool_description],
            "schema": self.output.json_schema,
            "request": [str(self.output.delivery), str(self.thinking), self.effort, self.request_overrides],
        }
        if self.output.is_text:  # only here, so a JSON workload's version is what it always was
            material["output"] = [str(self.output.type), self.output.max_chars]
        return "v-" + hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def asset_name(self) -> str:
        return self.destination.asset.name

    @property
    def asset_uri(self) -> str:
        return self.destination.asset.uri


_on_model: dict[tuple[int, str], tuple[Workload, Workload]] = {}


def _placeholders(text: str) -> set[str]:
    """``{name}`` fields of a format string (literal braces, as in JSON examples, are ignored)."""
    try:
        return {field for _, field, _, _ in string.Formatter().parse(text) if field}
    except ValueError:
        return set()


def load_workload_file(path: Path) -> Workload:
    """Read and validate one definition; its prompt file resolves relative to the YAML's folder."""
    import yaml

    label = path.stem
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise WorkloadDefinitionError(f"workload {label!r} ({path}): cannot read YAML: {exc}", label) from None
    if not isinstance(raw, dict):
        raise WorkloadDefinitionError(f"workload {label!r} ({path}): expected a mapping at the top level", label)
    declared = raw.get("name")
    if declared is not None and str(declared) != path.stem:
        raise WorkloadDefinitionError(
            f"workload file {path.name} declares name {str(declared)!r}: a workload's file must be named "
            f"{declared}.yaml ({path})", label)
    instructions_file = (raw.get("prompt") or {}).get("instructions_file")
    if instructions_file is not None and "instructions" not in raw:
        prompt_path = path.parent / instructions_file
        try:
            raw["instructions"] = prompt_path.read_text(encoding="utf-8")
        except OSError:
            raise WorkloadDefinitionError(
                f"workload {label!r} ({path}): field prompt.instructions_file: "
                f"{prompt_path} does not exist or cannot be read", label
            ) from None
    try:
        return Workload.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise WorkloadDefinitionError(f"workload {label!r} ({path}): {problems}", label) from None
