"""Checks a Messages request's ``params`` the way the API would before generating a reply.

``POST /v1/messages`` raises these synchronously (400, or 404 for an unknown or retired model);
a batch accepts anything at create time and reports the same problems later as ``errored``
results. The shape of the request is checked here; what a model accepts of it (forced tools,
thinking, effort, sampling, structured outputs) is ``rules.py``, read from the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.caching import TTL_SECONDS, cache_markers
from emulator.errors import ApiError, invalid_request, not_found
from emulator.models import ModelSpec, resolve_model
from emulator.rules import ThinkingPlan, apply_model_rules
from emulator.strict_schema import check_strict_schema
from emulator.tokens import input_tokens

DEFAULT_API_VERSION = "2023-06-01"
MAX_CACHE_BREAKPOINTS = 4

MESSAGES_PARAMS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "cache_control",
        "container",
        "context_management",
        "diagnostics",
        "inference_geo",
        "mcp_servers",
        "metadata",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "stream",
        "system",
        "thinking",
        "tool_choice",
        "tools",
        "user_profile_id",
        "temperature",
        "top_p",
        "top_k",
    }
)
COUNT_TOKENS_PARAMS = frozenset(
    {
        "model",
        "messages",
        "cache_control",
        "context_management",
        "mcp_servers",
        "output_config",
        "speed",
        "system",
        "thinking",
        "tool_choice",
        "tools",
    }
)


@dataclass(frozen=True)
class ValidRequest:
    model: ModelSpec
    input_tokens: int
    thinking: ThinkingPlan


def validate_message_params(
    params: Any, *, anthropic_version: str, in_batch: bool = False, betas: frozenset[str] = frozenset()
) -> ValidRequest:
    """Return the model's limits and the prompt size, or raise :class:`ApiError` naming the first problem."""
    if not isinstance(params, dict):
        raise invalid_request("params: Input should be a valid dictionary")
    _reject_unknown_keys(params, MESSAGES_PARAMS)
    if "max_tokens" not in params:
        raise invalid_request("max_tokens: Field required")
    max_tokens = params["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise invalid_request("max_tokens: Input should be a non-negative integer")
    _check_common(params)
    if in_batch and params.get("stream"):
        raise invalid_request("stream: Batch requests cannot be streamed")
    if in_batch and max_tokens == 0:  # batch-processing: no cache pre-warming inside a batch
        raise invalid_request("max_tokens: max_tokens: 0 (cache pre-warming) is not supported inside a batch")
    model = _resolve(params)
    thinking = apply_model_rules(model, params, anthropic_version=anthropic_version)
    allowed = model.max_tokens_allowed(in_batch=in_batch, betas=betas)
    if max_tokens > allowed:
        raise invalid_request(
            f"max_tokens: {max_tokens} > {allowed}, which is the maximum allowed number "
            f"of output tokens for {params['model']}"
        )
    prompt = input_tokens(params, model.tokenizer)
    if prompt > model.context_window:
        raise invalid_request(f"prompt is too long: {prompt} tokens > {model.context_window} maximum")
    return ValidRequest(model, prompt, thinking)


def validate_count_tokens_params(params: Any, *, anthropic_version: str) -> ModelSpec:
    if not isinstance(params, dict):
        raise invalid_request("body: Input should be a valid dictionary")
    _reject_unknown_keys(params, COUNT_TOKENS_PARAMS)
    _check_common(params)
    model = _resolve(params)
    apply_model_rules(model, params, anthropic_version=anthropic_version, counting=True)
    return model


def _reject_unknown_keys(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in params:
        if key not in allowed:
            raise invalid_request(f"{key}: Extra inputs are not permitted")


def _check_common(params: dict[str, Any]) -> None:
    model = params.get("model")
    if model is None:
        raise invalid_request("model: Field required")
    if not isinstance(model, str) or not model:
        raise invalid_request("model: Input should be a valid string")
    _check_messages(params.get("messages"))
    _check_system(params.get("system"))
    tool_names = _check_tools(params.get("tools"))
    _check_tool_choice(params.get("tool_choice"), tool_names)
    _check_output_config(params.get("output_config"))
    stop_sequences = params.get("stop_sequences")
    if stop_sequences is not None and (
        not isinstance(stop_sequences, list) or not all(isinstance(s, str) and s for s in stop_sequences)
    ):
        raise invalid_request("stop_sequences: Input should be a list of non-empty strings")
    _check_cache_control(params)


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise invalid_request("messages: Field required")
    if not isinstance(messages, list):
        raise invalid_request("messages: Input should be a valid list")
    if not messages:
        raise invalid_request("messages: at least one message is required")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise invalid_request(f"{where}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise invalid_request(f"{where}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            if not content:
                raise invalid_request(f"{where}.content: messages must have non-empty content")
        elif isinstance(content, list):
            if not content:
                raise invalid_request(f"{where}.content: messages must have non-empty content")
            for block_index, block in enumerate(content):
                _check_block(block, f"{where}.content.{block_index}")
        else:
            raise invalid_request(f"{where}.content: Input should be a string or a list of content blocks")


def _check_block(block: Any, where: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise invalid_request(f"{where}: Input should be a content block with a 'type'")
    if block["type"] == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise invalid_request(f"{where}.text: Field required")
        if not text:
            raise invalid_request(f"{where}.text: text content blocks must be non-empty")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid_request("system: Input should be a valid string or list of text blocks")
    for index, block in enumerate(system):
        is_text_block = isinstance(block, dict) and block.get("type") == "text"
        if not is_text_block or not isinstance(block.get("text"), str):
            raise invalid_request(f"system.{index}: Input should be a text block")
        if not block["text"]:
            raise invalid_request(f"system.{index}.text: text content blocks must be non-empty")


def _check_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise invalid_request("tools: Input should be a valid list")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise invalid_request(f"{where}.name: Field required")
        if tool["name"] in names:
            raise invalid_request(f"{where}.name: Tool names must be unique ({tool['name']!r})")
        names.add(tool["name"])
        if tool.get("type") in (None, "custom"):
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                raise invalid_request(f"{where}.input_schema: Field required")
            if schema.get("type") != "object":
                raise invalid_request(f"{where}.input_schema.type: Input should be 'object'")
            if tool.get("strict"):
                check_strict_schema(schema, f"{where}.input_schema")
    return names


def _check_tool_choice(tool_choice: Any, tool_names: set[str]) -> None:
    if tool_choice is None:
        return
    if not isinstance(tool_choice, dict) or tool_choice.get("type") not in ("auto", "any", "tool", "none"):
        raise invalid_request("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if tool_choice["type"] in ("any", "tool") and not tool_names:
        raise invalid_request("tool_choice: tool_choice requires tools to be provided")
    if tool_choice["type"] == "tool" and tool_choice.get("name") not in tool_names:
        raise invalid_request(f"tool_choice.name: Tool {tool_choice.get('name')!r} not found in tools")


def _check_output_config(output_config: Any) -> None:
    if output_config is None:
        return
    if not isinstance(output_config, dict):
        raise invalid_request("output_config: Input should be a valid dictionary")
    output_format = output_config.get("format")
    if output_format is None:
        return
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        raise invalid_request("output_config.format.type: Input should be 'json_schema'")
    if not isinstance(output_format.get("schema"), dict):
        raise invalid_request("output_config.format.schema: Field required")
    check_strict_schema(output_format["schema"], "output_config.format.schema")


def _check_cache_control(params: dict[str, Any]) -> None:
    markers = cache_markers(params)
    for marker in markers:
        if not isinstance(marker, dict) or marker.get("type") != "ephemeral":
            raise invalid_request("cache_control.type: Input should be 'ephemeral'")
        if marker.get("ttl", "5m") not in TTL_SECONDS:
            raise invalid_request("cache_control.ttl: Input should be '5m' or '1h'")
    found = len(markers)
    if found > MAX_CACHE_BREAKPOINTS:
        raise invalid_request(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
        )


def _resolve(params: dict[str, Any]) -> ModelSpec:
    """Unknown and retired models alike are ``not_found_error`` (model-deprecations: requests to a
    retired model "will fail"; the API publishes no other wording)."""
    model = resolve_model(params["model"])
    if model is None or model.retired:
        raise not_found(f"model: {params['model']}")
    return model


def error_for(exc: ApiError) -> dict[str, Any]:
    """The ``error`` object of an errored batch result."""
    return {"type": "error", "error": exc.error_object(), "request_id": None}
