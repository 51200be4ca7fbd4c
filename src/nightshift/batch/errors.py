"""Failures that retrying the task cannot mend: the operators fail at once on them (no task retries).

A transient fault (a 429 with ``retry-after``, a 5xx, a dropped connection) is retried where
it happens; these are not transient. Each says what happened and what would mend it.
"""

from __future__ import annotations


class RetryWontHelp(Exception):
    """Base of the failures a task retry would only repeat."""


class SpendLimitReached(RetryWontHelp):
    """The organization is over its usage tier's monthly spend cap (a backend's ``ErrorKind.SPEND_LIMIT``;
    at Anthropic a 429 ``rate_limit_error`` with ``error_code`` ``enforced_spend_limit_reached``). Every
    call fails until the cap resets or is raised, so the night stops instead of backing off."""

    def __init__(self, during: str, message: str) -> None:
        super().__init__(f"the API refused {during}: the organization's API spend limit is reached "
                         f"(enforced_spend_limit_reached): {message} Retrying cannot help until the limit resets "
                         "or is raised.")


class AccountProblem(RetryWontHelp):
    """Batch items came back with an error about the account, not the request (authentication,
    permission, not found, billing): resubmitting them would fail the same way."""

    def __init__(self, run_pk: int, counts: dict[str, int]) -> None:
        found = ", ".join(f"{count} {error_type}" for error_type, count in sorted(counts.items()))
        super().__init__(f"run {run_pk}: batch items came back with account errors ({found}): the night stops here, "
                         "no retry round is spent on them; fix the account (key, workspace, billing) and requeue")
        self.counts = counts

