"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

Unlike a batch, a synchronous request is validated up front: a bad request is a 400 (404 for
an unknown model) and an item fault aimed at its ``params_hash`` is answered with the fault's
error status.
"""

from __future__ import annotations

from typing import Any

from emulator.hashing import base62_id
from emulator.processing import process_request
from emulator.runtime import Emulator
from emulator.tokens import input_tokens
from emulator.validation import validate_count_tokens_params


def create_message(emulator: Emulator, params: Any, *, anthropic_version: str) -> dict[str, Any]:
    """The Message for ``params`` at the current virtual time; raises ``ApiError`` on failure."""
    store = emulator.store
    with store.transaction():
        sequence = store.next_sequence("message")
        planner = emulator.faults.item_planner()
        outcome = process_request(
            store,
            planner,
            params,
            at=emulator.now(),
            custom_id=None,
            message_id=base62_id("msg_", store.id_seed(), "message", sequence),
            anthropic_version=anthropic_version,
            service_tier="standard",
            malformed_rate=emulator.config.malformed_rate,
            model_profiles=emulator.config.model_profiles,
        )
        planner.save()
    if outcome.error is not None:
        raise outcome.error
    assert outcome.message is not None
    return outcome.message


def count_tokens(params: Any, *, anthropic_version: str) -> dict[str, int]:
    model = validate_count_tokens_params(params, anthropic_version=anthropic_version)
    return {"input_tokens": input_tokens(params, model.tokenizer)}
