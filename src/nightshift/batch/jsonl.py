"""Reading a results stream (JSONL) as it arrives."""

from __future__ import annotations

from collections.abc import Iterator


def jsonl_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Non-empty lines of a byte stream (JSONL), without decoding it to text first."""
    tail = b""
    for chunk in chunks:
        lines = (tail + chunk).split(b"\n") if tail else chunk.split(b"\n")
        tail = lines.pop()
        yield from (line for line in lines if line.strip())
    if tail.strip():
        yield tail
