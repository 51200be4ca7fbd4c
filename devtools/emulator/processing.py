"""Turn one Messages request into a Message or an error, the same way for both paths.

``POST /v1/messages`` and a batch item both come through :func:`process_request`, so they
validate identically and produce identical content; they differ only in ``service_tier``,
the message id, and in what the prompt cache holds at the moment they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.caching import CacheUsage, apply_prompt_cache
from emulator.errors import ApiError
from emulator.faults import ItemPlanner
from emulator.model_profiles import profile_for
from emulator.replies import Reply, generate_reply, params_hash
from emulator.store import Store
from emulator.validation import validate_message_params


@dataclass(frozen=True)
class Outcome:
    message: dict[str, Any] | None
    error: ApiError | None


def process_request(
    store: Store,
    planner: ItemPlanner,
    params: Any,
    *,
    at: float,
    custom_id: str | None,
    message_id: str,
    anthropic_version: str,
    service_tier: str,
    malformed_rate: float,
    betas: frozenset[str] = frozenset(),
    model_profiles: dict[str, Any] | None = None,
) -> Outcome:
    """Validate, apply item faults, generate the reply and account for the prompt cache at ``at``.
    ``model_profiles``: the normalised config key (``model_profiles.py``), looked up by catalogue id."""
    in_batch = custom_id is not None
    try:
        valid = validate_message_params(params, anthropic_version=anthropic_version, in_batch=in_batch,
                                        betas=betas)
    except ApiError as exc:
        return Outcome(None, exc)
    if planner.rows:
        plan = planner.plan(custom_id=custom_id, params_hash=params_hash(params))
        if plan.error is not None:
            return Outcome(None, plan.error)
        perturb = plan.perturb
    else:
        perturb = None
    reply = generate_reply(params, malformed_rate=malformed_rate, perturb=perturb, thinking=valid.thinking,
                           tokenizer=valid.model.tokenizer,
                           profile=profile_for(model_profiles, valid.model.id))
    usage = apply_prompt_cache(
        store,
        model=valid.model.id,
        params=params,
        at=at,
        min_cacheable_tokens=valid.model.min_cacheable_tokens,
        total_tokens=valid.input_tokens,
        tokenizer=valid.model.tokenizer,
    )
    return Outcome(message_dict(message_id, params["model"], reply, usage, service_tier), None)


def message_dict(
    message_id: str, model: str, reply: Reply, usage: CacheUsage, service_tier: str
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": usage_dict(usage, reply.output_tokens, service_tier, reply.thinking_tokens),
    }


def usage_dict(usage: CacheUsage, output_tokens: int, service_tier: str,
               thinking_tokens: int | None = None) -> dict[str, Any]:
    details = {} if thinking_tokens is None else {"output_tokens_details": {"thinking_tokens": thinking_tokens}}
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.ephemeral_5m_input_tokens,
            "ephemeral_1h_input_tokens": usage.ephemeral_1h_input_tokens,
        },
        "service_tier": service_tier,
        **details,
    }
