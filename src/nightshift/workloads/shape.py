"""How a workload's request is shaped for its model: the answer's form, thinking, effort.

The workload declares its output once (a JSON Schema) and, optionally, ``thinking`` and
``effort``; :func:`request_shape` turns that and the model's capabilities (``model_table``) into
what is sent, or says plainly why the model would refuse it. Definition checks call it at load
with the table; a run calls it again with the capabilities the Models API confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from nightshift.model_table import ModelCapabilities, ThinkingOff


class Delivery(StrEnum):
    """How the structured answer is asked for."""

    AUTO = "auto"  # structured outputs where the model has them, else a forced tool
    JSON_SCHEMA = "json_schema"  # output_config.format; the reply is JSON in a text block
    FORCED_TOOL = "forced_tool"  # tool_choice names the output tool; the reply is its input
    TEXT = "text"  # a plain-text output: no tool, no output_config.format; the reply's text is the answer


class Thinking(StrEnum):
    DEFAULT = "default"  # whatever the model does when `thinking` is omitted
    ADAPTIVE = "adaptive"
    OFF = "off"  # the model's own way of turning it off (disabled, or between_tools)


class UnsupportedRequest(ValueError):
    """A workload setting its model would refuse; the message names the setting and the model."""


@dataclass(frozen=True)
class RequestShape:
    delivery: Delivery  # JSON_SCHEMA, FORCED_TOOL or TEXT, never AUTO
    thinking_type: str | None  # the `thinking.type` to send, or None to omit `thinking`
    effort: str | None  # `output_config.effort` to send, or None
    thinks: bool  # whether the model will think (and so spend output tokens on it)
    effort_in_force: str | None  # the effort it thinks at: the one sent, or the model's default

    @property
    def thinking(self) -> dict[str, Any] | None:
        return None if self.thinking_type is None else {"type": self.thinking_type}

    def as_dict(self) -> dict[str, Any]:
        return {"delivery": str(self.delivery), "thinking": self.thinking_type, "effort": self.effort,
                "thinks": self.thinks, "effort_in_force": self.effort_in_force}


def request_shape(caps: ModelCapabilities, *, delivery: Delivery, thinking: Thinking,
                  effort: str | None) -> RequestShape:
    model = caps.model
    delivery, thinking = Delivery(delivery), Thinking(thinking)  # also when a copy was made without validation
    if delivery is Delivery.AUTO:
        if caps.structured_outputs:
            delivery = Delivery.JSON_SCHEMA
        elif caps.forced_tool_choice:
            delivery = Delivery.FORCED_TOOL
        else:
            raise UnsupportedRequest(f"{model} has neither structured outputs nor forced tool use")
    if delivery is Delivery.JSON_SCHEMA and not caps.structured_outputs:
        raise UnsupportedRequest(f"output.delivery json_schema: {model} has no structured outputs")
    if delivery is Delivery.FORCED_TOOL and not caps.forced_tool_choice:
        raise UnsupportedRequest(f"output.delivery forced_tool: {model} refuses a forced tool_choice (use json_schema)")
    if delivery is Delivery.FORCED_TOOL and thinking is Thinking.ADAPTIVE:
        raise UnsupportedRequest("thinking adaptive: a forced tool cannot be combined with thinking")
    wants_off = thinking is Thinking.OFF or (delivery is Delivery.FORCED_TOOL and caps.thinks_by_default)
    if wants_off and caps.thinks_by_default and caps.thinking_off is ThinkingOff.NONE:
        raise UnsupportedRequest(f"thinking off: {model} cannot turn thinking off"
                                 + (" (and so cannot take a forced tool)" if delivery is Delivery.FORCED_TOOL else ""))
    if thinking is Thinking.ADAPTIVE and not caps.thinks_by_default:
        raise UnsupportedRequest(f"thinking adaptive: Nightshift's table has no adaptive thinking for {model}")
    thinks = thinking is Thinking.ADAPTIVE or (caps.thinks_by_default and not wants_off)
    param = None
    if thinking is Thinking.ADAPTIVE:
        param = "adaptive"
    elif wants_off and caps.thinks_by_default:
        param = str(caps.thinking_off)
    if effort is not None:
        if not caps.effort_levels:
            raise UnsupportedRequest(f"effort {effort}: {model} has no effort setting")
        allowed = caps.effort_levels if thinks or not caps.thinks_by_default else caps.effort_levels_with_thinking_off
        if effort not in allowed:
            raise UnsupportedRequest(f"effort {effort}: {model} allows {', '.join(allowed)}"
                                     + ("" if thinks else " with thinking off"))
    return RequestShape(delivery, param, effort, thinks, effort or caps.default_effort)
