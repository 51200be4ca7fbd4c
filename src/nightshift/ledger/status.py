"""The values the ledger stores in its status columns, as enums (each a ``str``: binds and compares as one).

The members are exactly the values the schema's CHECK constraints allow; the stored text never changes.
"""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    """``nightshift.runs.status``."""

    COLLECTING = "collecting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EMPTY = "empty"

    @property
    def closed(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED)


class RunMode(enum.StrEnum):
    """``nightshift.runs.mode``: where a run takes its requests from."""

    QUEUE = "queue"  # claims the pending requests of the request queue
    INTERVAL = "interval"  # a backfill: the source rows of its data interval
    SHADOW = "shadow"  # copies the window's requests; the streaming path keeps them
    TRIAL = "trial"  # a model trial: sampled destination keys answered on a candidate model (trial table)


class DeliveryMode(enum.StrEnum):
    """``nightshift.workload_modes.mode``: whether a workload's batch runs write a shadow table or the
    destination."""

    SHADOW = "shadow"
    BATCH = "batch"


class TrialStatus(enum.StrEnum):
    """``nightshift.model_trials.status``."""

    RUNNING = "running"
    REPORTED = "reported"
    FAILED = "failed"


class ItemStatus(enum.StrEnum):
    """``nightshift.items.status``: ``succeeded`` and ``failed`` are terminal."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    RETRY = "retry"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BatchStatus(enum.StrEnum):
    """``nightshift.batches.status``: the ledger's view of a batch, not the API's ``processing_status``."""

    INTENT = "intent"  # recorded before the create call
    SUBMITTED = "submitted"
    ENDED = "ended"
    LANDED = "landed"
    ABANDONED = "abandoned"


class CancelReason(enum.StrEnum):
    """``nightshift.batches.cancel_reason``: who cancelled a batch, so its unprocessed requests end right."""

    DEADLINE = "deadline"  # they fail deadline_exceeded
    KILLED = "killed"  # the task was killed; a retry resubmits them


class Verdict(enum.StrEnum):
    """``nightshift.suspect_batches.verdict``: whether a listed batch no answer named is ours."""

    UNPROVEN = "unproven"
    OURS = "ours"
    NOT_OURS = "not_ours"


class RequestStatus(enum.StrEnum):
    """``app.llm_requests.status``: the request queue's states."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"
