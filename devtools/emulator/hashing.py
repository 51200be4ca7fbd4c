"""Stable hashing helpers: every "random" choice in the emulator is derived from these.

Python's built-in ``hash`` is salted per process, so nothing here uses it: the same request
must get the same reply in every run, on every machine, before and after a restart.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal values always serialise equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(*parts: Any) -> bytes:
    """SHA-256 over the canonical form of ``parts``."""
    hasher = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else canonical_json(part)
        hasher.update(text.encode("utf-8"))
        hasher.update(b"\x1f")
    return hasher.digest()


def hex_digest(*parts: Any, length: int = 16) -> str:
    return digest(*parts).hex()[:length]


def unit_interval(*parts: Any) -> float:
    """A number in [0, 1) that depends only on ``parts``; used for rate-based choices."""
    return int.from_bytes(digest(*parts)[:8], "big") / 2**64


def pick_index(count: int, *parts: Any) -> int:
    """A stable index in ``range(count)``."""
    return int.from_bytes(digest(*parts)[:8], "big") % count


def base62_id(prefix: str, *parts: Any, length: int = 24) -> str:
    """An id shaped like the real API's (``msg_…``, ``msgbatch_…``) but derived from ``parts``."""
    raw = digest(*parts)
    return prefix + "".join(_BASE62[byte % 62] for byte in raw[:length])
