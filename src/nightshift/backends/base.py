"""The seam between the batch core and a vendor's batch API: what the core asks, in its own types.

The core (collect, submit, wait, land, finalize) speaks only these: a batch's state, one
normalised outcome per request, a description of a failed call, and the :class:`BatchBackend`
protocol. An implementation (:mod:`nightshift.backends.anthropic`) holds every import and
every call of its vendor's SDK; none is imported here, so the core loads without it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class ProcessingStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    ENDED = "ended"


@dataclass(frozen=True)
class RequestCounts:
    """How a batch's requests stand: still processing, or how each ended."""

    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0

    @property
    def total(self) -> int:
        return self.processing + self.succeeded + self.errored + self.canceled + self.expired

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COUNT_NAMES = tuple(f.name for f in fields(RequestCounts))


@dataclass(frozen=True)
class BatchState:
    """A batch as the backend reports it at one moment."""

    id: str
    processing_status: ProcessingStatus
    request_counts: RequestCounts
    created_at: datetime
    ended_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.processing_status is ProcessingStatus.ENDED


class OutcomeKind(enum.StrEnum):
    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    CANCELED = "canceled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request's result in an ended batch.

    ``message`` (succeeded only) is the reply as plain data, shaped as the Messages API returns
    it (content blocks, ``stop_reason``, ``usage``, ``model``): the workload's reply parser reads
    it. ``error_type`` and ``error_message`` (errored only) are the API's own.
    """

    custom_id: str
    kind: OutcomeKind
    message: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None


class ErrorKind(enum.StrEnum):
    """What a failed call means to the core."""

    #: rate limited, overloaded, a server error, a timeout, a dropped connection: waiting may mend it
    TRANSIENT = "transient"
    #: the organization's spend cap: every call fails until it resets or is raised
    SPEND_LIMIT = "spend_limit"
    #: the key or its permissions: the account, not the request
    AUTHENTICATION = "authentication"
    #: the configured URL refused the connection (nothing listens there): a wrong gateway or emulator URL,
    #: or the API restarting under a wait that it answered before
    UNREACHABLE = "unreachable"
    #: the request itself was refused (400): sending it again changes nothing
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    OTHER = "other"


@dataclass(frozen=True)
class ApiFailure:
    """A backend's description of an exception its calls raised."""

    kind: ErrorKind
    #: the API's own message
    message: str
    #: the API's own error type (``invalid_request_error``, ``connection_error``...)
    error_type: str
    status: int | None = None
    #: seconds the API asked to wait before calling again
    retry_after: float | None = None
    #: the API refused before doing any of the call's work (nothing can have been created)
    refused_before_work: bool = False
    #: where the call went (scheme, host and port only: never a key or a query)
    url: str | None = None

    @property
    def transient(self) -> bool:
        """Worth waiting through: a wait rides out an API that restarts (a refused connection) too."""
        return self.kind in (ErrorKind.TRANSIENT, ErrorKind.UNREACHABLE)


@dataclass(frozen=True)
class Poll:
    """The states of a run's batches, in the order asked, and how many API calls reading them took."""

    states: list[BatchState]
    calls: int


class SpooledBody(Protocol):
    """A create body the core built on disk: iterable more than once (a retried upload), its size known."""

    size: int

    def __iter__(self) -> Iterator[bytes]: ...


class CallBudget(Protocol):
    """Blocks until one more batch-endpoint call fits the account-wide budget (:mod:`nightshift.batch.budget`)."""

    def take(self) -> None: ...


class AsyncCallBudget(Protocol):
    async def take(self) -> None: ...


@runtime_checkable
class BatchBackend(Protocol):
    """A vendor's batch API, as the core uses it (sync: the worker's tasks).

    Calls return the types above; a failed call raises the implementation's own exception,
    which :meth:`failure` describes (None when it is not a failed API call at all). Every
    batch-endpoint call, retries included, takes a slot of the ``call_budget`` the backend was
    built with.
    """

    name: str

    def create(self, body: SpooledBody) -> BatchState:
        """Create a batch from the body, in ONE attempt: a create that timed out may still have
        created its batch, so only the core (which looks for it first) may try again."""

    def retrieve(self, batch_id: str) -> BatchState: ...

    def recent_batches(self) -> Iterable[BatchState]:
        """The workspace's batches, newest first, paging on as the caller reads (finding orphans)."""

    def cancel(self, batch_id: str) -> None: ...

    def results(self, batch_id: str) -> AbstractContextManager[Iterator[Outcome]]:
        """An ended batch's outcomes, streamed item by item as they arrive (never the whole file in
        memory). Entering raises a :data:`ErrorKind.NOT_FOUND` failure when they are gone."""

    def failure(self, exc: BaseException) -> ApiFailure | None: ...

    def is_transient(self, exc: BaseException) -> bool:
        """Worth waiting through: rate limits, server trouble, dropped connections; not the spend limit."""

    def console_url(self, batch_id: str) -> str: ...

    def count_tokens(self, params: dict[str, Any]) -> int:
        """The input tokens of Messages params, counted for free; an invalid request fails as it would
        in a batch (:data:`ErrorKind.INVALID_REQUEST`)."""

    def model_capabilities(self, model: str) -> dict[str, Any] | None:
        """What the vendor's Models API says ``model`` supports (None: it does not say)."""

    def create_message(self, params: dict[str, Any]) -> dict[str, Any]:
        """One synchronous Messages call at the standard rate (the streaming path, the cache warm-up)."""


@runtime_checkable
class AsyncBatchBackend(Protocol):
    """The calls a wait makes from the triggerer's event loop."""

    name: str

    async def retrieve(self, batch_id: str) -> BatchState: ...

    async def batch_states(self, batch_ids: Sequence[str], *, active_batches: int) -> Poll:
        """The states of several batches in as few calls as it takes (a list page can cover many;
        ``active_batches``, the deployment's count, sizes it)."""

    async def cancel(self, batch_id: str) -> None: ...

    def failure(self, exc: BaseException) -> ApiFailure | None: ...

    def is_transient(self, exc: BaseException) -> bool: ...

    async def aclose(self) -> None: ...
