"""Read a create-batch body ``{"requests": [...]}`` one request at a time.

A 100,000-request body is around 100 MB of JSON; parsing it whole would hold the text and
every decoded object in memory at once. Instead the body is pulled in chunks and each element
of ``requests`` is decoded on its own with ``json.JSONDecoder.raw_decode``, so memory stays
at roughly one chunk plus one request. The size cap (413 ``request_too_large``) is enforced
while reading, and an oversized body is drained so the client still reads the 413 rather than
a reset connection.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from typing import Any

from emulator.errors import ApiError, invalid_request

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


def body_too_large(limit: int) -> ApiError:
    return ApiError("request_too_large", f"Request exceeds the maximum allowed size of {limit} bytes.")


class CappedReader:
    """Pulls raw chunks and raises 413 once more than ``limit`` bytes have arrived."""

    def __init__(self, pull: Callable[[], bytes], limit: int) -> None:
        self._pull = pull
        self.limit = limit
        self.received = 0

    def read(self) -> bytes:
        chunk = self._pull()
        self.received += len(chunk)
        if self.received > self.limit:
            self.drain()
            raise body_too_large(self.limit)
        return chunk

    def drain(self) -> None:
        while self._pull():
            pass


class _Text:
    """A sliding window of decoded text over the chunked body."""

    def __init__(self, read: Callable[[], bytes]) -> None:
        self._read = read
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.buffer = ""
        self.position = 0
        self.finished = False

    def fill(self) -> bool:
        """Append the next chunk; False once the body is exhausted."""
        if self.finished:
            return False
        chunk = self._read()
        try:
            text = self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise invalid_request("There was an error parsing the body: invalid UTF-8") from exc
        self.buffer = self.buffer[self.position :] + text
        self.position = 0
        if not chunk:
            self.finished = True
        return True

    def peek(self) -> str | None:
        while True:
            while self.position < len(self.buffer) and self.buffer[self.position] in _WHITESPACE:
                self.position += 1
            if self.position < len(self.buffer):
                return self.buffer[self.position]
            if not self.fill():
                return None

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise _parse_error()
        self.position += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buffer, self.position)
            except json.JSONDecodeError:
                if not self.fill():
                    raise _parse_error() from None
                continue
            if end == len(self.buffer) and not self.finished and not isinstance(value, dict | list | str):
                # A number or literal at the very end of the window may continue in the next chunk.
                self.fill()
                continue
            self.position = end
            return value


def _parse_error() -> ApiError:
    return invalid_request(
        "There was an error parsing the body: expected a JSON object with a 'requests' list"
    )


def iter_batch_requests(read: Callable[[], bytes]) -> Iterator[Any]:
    """Yield each element of the body's ``requests`` list, in order, as decoded JSON."""
    text = _Text(read)
    text.expect("{")
    saw_requests = False
    if text.peek() == "}":
        text.position += 1
    else:
        while True:
            key = text.value()
            if not isinstance(key, str):
                raise _parse_error()
            text.expect(":")
            if key == "requests":
                saw_requests = True
                yield from _iter_array(text)
            else:
                text.value()
            separator = text.peek()
            text.position += 1
            if separator == "}":
                break
            if separator != ",":
                raise _parse_error()
    if text.peek() is not None:
        raise _parse_error()
    if not saw_requests:
        raise invalid_request("requests: Field required")


def _iter_array(text: _Text) -> Iterator[Any]:
    if text.peek() != "[":
        raise invalid_request("requests: Input should be a valid list")
    text.position += 1
    if text.peek() == "]":
        text.position += 1
        return
    while True:
        yield text.value()
        separator = text.peek()
        text.position += 1
        if separator == "]":
            return
        if separator != ",":
            raise _parse_error()
