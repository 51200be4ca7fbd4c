"""The rules a model's catalogue entry imposes on a request, and the thinking it will do.

``POST /v1/messages``, ``count_tokens`` and every batch item go through :func:`apply_model_rules`,
so the three refuse the same params with the same message. Each rule reads one field of the
model's :class:`~emulator.models.ModelSpec`; none names a model. The messages quoted from the
API are marked with the page they were read on (docs/emulator.md, "Fidelity"); the others
follow the API's ``field: problem`` style.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.errors import invalid_request
from emulator.models import EFFORT_LEVELS, THINKING_TYPES, ModelSpec

#: fable-5-1-whats-new (the token-counting endpoint applies it too).
FORCED_TOOL_REFUSED = 'tool_choice: type "tool" and "any" are not supported for this model.'
#: extended-thinking-tools: forced tool use is incompatible with thinking.
THINKING_WITH_FORCED_TOOL = "Thinking may not be enabled when tool_choice forces tool use."
#: opus-5-5-whats-new, for ``disabled`` and ``enabled`` alike.
THINKING_TYPE_REFUSED = (
    '"thinking.type.{type}" is not supported for this model. '
    'Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
)
#: sonnet-5-5-whats-new says the message "points to between_tools"; its wording is ours.
THINKING_DISABLED_USE_BETWEEN_TOOLS = (
    '"thinking.type.disabled" is not supported for this model. '
    'Use "thinking.type.between_tools" to turn off up-front thinking.'
)
#: Seen from Claude Sonnet 5 (a third-party report, docs/emulator.md).
EFFORT_WITH_THINKING_OFF = (
    "output_config.effort '{effort}' is not supported when thinking is disabled on this model. "
    "Use effort '{highest}' or below, or enable thinking."
)
#: A third-party report of the API's answer.
EFFORT_LEVEL_REFUSED = "This model does not support effort level '{effort}'. Supported levels: {levels}."
#: versioning: 2026-10-21 removed the sampling parameters; the reply is pydantic's extra-field error.
SAMPLING_REMOVED_IN_VERSION = "2026-10-21"
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
#: Live reports of the API's answer on models that reject non-default sampling (anthropic-version 2023-06-01).
SAMPLING_DEPRECATED = "`{name}` is deprecated for this model."
#: haiku-4-5-migration: temperature and top_p together are a 400.
SAMPLING_BOTH = "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
#: The documented minimum of ``thinking.budget_tokens`` (anthropic.types.ThinkingConfigEnabledParam).
MIN_THINKING_BUDGET = 1024
THINKING_DISPLAYS = ("summarized", "omitted")


@dataclass(frozen=True)
class ThinkingPlan:
    """What the model will do before it answers: whether it thinks, at which effort, how shown."""

    active: bool
    effort: str | None
    display: str
    budget_tokens: int | None = None


def apply_model_rules(model: ModelSpec, params: dict[str, Any], *, anthropic_version: str,
                      counting: bool = False) -> ThinkingPlan:
    """Raise the 400 the API would answer for ``params`` on ``model``; else what it will think.

    ``counting`` is the token-counting endpoint: no ``max_tokens``, every other rule the same.
    """
    _check_sampling(model, params, anthropic_version)
    effort = _effort(model, params)
    plan = _thinking(model, params, effort, counting=counting)
    _check_tool_choice(model, params, plan)
    _check_structured_outputs(model, params)
    return plan


def _check_sampling(model: ModelSpec, params: dict[str, Any], anthropic_version: str) -> None:
    given = [name for name in SAMPLING_PARAMS if params.get(name) is not None]
    if given and anthropic_version >= SAMPLING_REMOVED_IN_VERSION:
        raise invalid_request(f"{given[0]}: Extra inputs are not permitted")
    for name in ("temperature", "top_p"):
        value = params.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1):
            raise invalid_request(f"{name}: Input should be a number between 0 and 1")
    top_k = params.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise invalid_request("top_k: Input should be a non-negative integer")
    if "temperature" in given and "top_p" in given:
        raise invalid_request(SAMPLING_BOTH)
    if not model.sampling_parameters:
        for name in given:
            if name == "temperature" and params[name] == 1:
                continue  # the default, accepted on its own
            raise invalid_request(SAMPLING_DEPRECATED.format(name=name))


def _effort(model: ModelSpec, params: dict[str, Any]) -> str | None:
    output_config = params.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if effort is None:
        return model.effort.default
    if effort not in EFFORT_LEVELS:
        raise invalid_request(
            "output_config.effort: Input should be " + ", ".join(f"'{level}'" for level in EFFORT_LEVELS))
    if not model.effort.levels:
        raise invalid_request("output_config.effort: effort is not supported for this model.")
    if effort not in model.effort.levels:
        raise invalid_request(EFFORT_LEVEL_REFUSED.format(effort=effort, levels=", ".join(sorted(model.effort.levels))))
    return effort


def _thinking(model: ModelSpec, params: dict[str, Any], effort: str | None, *, counting: bool) -> ThinkingPlan:
    given = params.get("thinking")
    if given is None:
        kind = model.thinking.default
        return ThinkingPlan(kind is not None, effort, model.thinking.display_default)
    if not isinstance(given, dict) or given.get("type") not in THINKING_TYPES:
        raise invalid_request("thinking.type: Input should be " + ", ".join(f"'{t}'" for t in THINKING_TYPES))
    kind = given["type"]
    if kind not in model.thinking.types:
        if kind == "disabled" and "between_tools" in model.thinking.types:
            raise invalid_request(THINKING_DISABLED_USE_BETWEEN_TOOLS)
        raise invalid_request(THINKING_TYPE_REFUSED.format(type=kind))
    allowed_fields = {"type", "display"} | ({"budget_tokens"} if kind == "enabled" else set())
    if kind in ("disabled", "between_tools"):
        allowed_fields = {"type"}
    for key in given:
        if key not in allowed_fields:
            raise invalid_request(f"thinking.{kind}.{key}: Extra inputs are not permitted")
    display = given.get("display") or model.thinking.display_default
    if display not in THINKING_DISPLAYS:
        raise invalid_request(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")
    if kind in ("disabled", "between_tools"):
        off_levels = model.effort.levels_with_thinking_off
        if effort is not None and model.effort.levels and effort not in off_levels:
            highest = off_levels[-1] if off_levels else "low"
            raise invalid_request(EFFORT_WITH_THINKING_OFF.format(effort=effort, highest=highest))
        return ThinkingPlan(False, effort, display)
    if kind == "enabled":
        budget = given.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise invalid_request("thinking.enabled.budget_tokens: Field required")
        if budget < MIN_THINKING_BUDGET:
            raise invalid_request(
                f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}")
        if not counting and budget >= int(params.get("max_tokens", 0)):
            raise invalid_request("`max_tokens` must be greater than `thinking.budget_tokens`")
        return ThinkingPlan(True, effort, display, budget)
    return ThinkingPlan(True, effort, display)


def _check_tool_choice(model: ModelSpec, params: dict[str, Any], plan: ThinkingPlan) -> None:
    choice = params.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") in ("tool", "any")
    if not forced:
        return
    if not model.forced_tool_choice:
        raise invalid_request(FORCED_TOOL_REFUSED)
    if plan.active:
        raise invalid_request(THINKING_WITH_FORCED_TOOL)


def _check_structured_outputs(model: ModelSpec, params: dict[str, Any]) -> None:
    output_config = params.get("output_config")
    wants_format = isinstance(output_config, dict) and output_config.get("format") is not None
    strict_tools = [i for i, tool in enumerate(params.get("tools") or []) if isinstance(tool, dict) and tool.get("strict")]
    if (wants_format or strict_tools) and not model.structured_outputs:
        where = "output_config.format" if wants_format else f"tools.{strict_tools[0]}.strict"
        raise invalid_request(f"{where}: structured outputs are not supported for this model.")
