"""Money and data: never throw away paid work, never spend rounds or money where a retry cannot help.

Each scenario runs a night the way the DAG runs it (``ChaosNight``), with a fault the strict
emulator injects, and ends with the shared invariants.
"""

from __future__ import annotations

import pytest

from nightshift.batch.errors import AccountProblem, SpendLimitReached
from tests.chaos.driver import ChaosNight
from tests.chaos.invariants import assert_nothing_lost_or_doubled, fired, outcomes
from tests.helpers import seed

pytestmark = pytest.mark.chaos
TICKETS_PER_NIGHT = 8


def test_item_errors_other_than_invalid_request_and_the_accounts_are_retried(app_db, app_dsn, anthropic_conn):
    """The batch guide: any item error but invalid_request_error can be retried directly."""
    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    for error_type in ("rate_limit_error", "timeout_error", "overloaded_error", "api_error"):
        emulator.add_fault(kind="item_error", error_type=error_type, count=1)
    run, summary = ChaosNight(app_dsn).whole_night()
    assert fired(emulator) == [1, 1, 1, 1]
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT}  # all four went to round 1
    assert summary.status == "succeeded" and summary.rounds == 2
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_an_account_error_stops_the_night_instead_of_spending_rounds(app_db, app_dsn, anthropic_conn):
    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    emulator.add_fault(kind="item_error", error_type="authentication_error", count=1,
                       message="invalid x-api-key")
    emulator.add_fault(kind="item_error", error_type="overloaded_error", count=2)
    night = ChaosNight(app_dsn)
    run, summary = night.whole_night()
    assert isinstance(night.stopped, AccountProblem) and "1 authentication_error" in str(night.stopped)
    assert emulator.stats()["batches_created"] == 2  # round 0 (4 + 4 requests); no retry round spent
    assert outcomes(app_db, run.run_pk) == {"succeeded": TICKETS_PER_NIGHT - 3, "authentication_error": 1,
                                            "overloaded_error_after_retries": 2}
    assert summary.status == "failed"  # the verdict fails the DAG run and alerts
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)


def test_the_spend_limit_429_fails_the_submit_at_once(app_db, app_dsn, anthropic_conn):
    """A 429 with error_code enforced_spend_limit_reached and no retry-after is not a rate limit."""
    emulator = anthropic_conn
    seed(app_db, tickets=TICKETS_PER_NIGHT)
    emulator.add_fault(kind="spend_limit", endpoint="create")
    night = ChaosNight(app_dsn)
    run, summary = night.whole_night()
    assert isinstance(night.stopped, SpendLimitReached) and "spend limit" in str(night.stopped)
    assert [name for name, _ in night.failures] == ["submit"]  # one attempt: no task retry
    assert emulator.endpoint_calls("create") == 1 and emulator.stats()["batches_created"] == 0
    assert summary.status == "failed" and outcomes(app_db, run.run_pk) == {"not_submitted": TICKETS_PER_NIGHT}
    assert_nothing_lost_or_doubled(app_db, emulator, run.run_pk)
