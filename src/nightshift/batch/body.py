"""A Message Batches create body, built once, measured exactly, and uploaded from disk.

The body is written request by request into a spooled temporary file, so its size is the
real serialised size (what the 256 MB cap is about) and a large batch does not sit in
memory. It can be iterated more than once, which the SDK needs to retry an upload.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import msgspec

PREFIX = b'{"requests":['
SUFFIX = b"]}"
CHUNK = 1 << 20

# Compact UTF-8 JSON, as json.dumps(ensure_ascii=False, separators=(",", ":")) writes it, about 4×
# faster (measured on the benchmark's 2.3 KB requests: 5.3 s -> 1.4 s per 100,000).
_encode = msgspec.json.Encoder().encode


def encode_request(custom_id: str, params: dict[str, Any]) -> bytes:
    return _encode({"custom_id": custom_id, "params": params})


class BatchBody:
    """An append-only create body; ``size_with`` tells what one more request would make it."""

    def __init__(self, spool_bytes: int = 16 << 20) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=spool_bytes)
        self._file.write(PREFIX)
        self._written = len(PREFIX)  # what the file holds; counted, not asked of the file each time
        self.count = 0
        self.custom_ids: list[str] = []

    @property
    def size(self) -> int:
        return self._written + len(SUFFIX)

    def size_with(self, encoded: bytes) -> int:
        return self.size + len(encoded) + (1 if self.count else 0)

    def add(self, custom_id: str, encoded: bytes) -> None:
        self._file.write(b"," + encoded if self.count else encoded)
        self._written += len(encoded) + (1 if self.count else 0)
        self.count += 1
        self.custom_ids.append(custom_id)

    def __iter__(self) -> Iterator[bytes]:
        end = self._file.tell()
        try:
            self._file.seek(0)
            remaining = end
            while remaining > 0:
                chunk = self._file.read(min(CHUNK, remaining))
                remaining -= len(chunk)
                yield chunk
            yield SUFFIX
        finally:
            self._file.seek(end)

    def close(self) -> None:
        self._file.close()
