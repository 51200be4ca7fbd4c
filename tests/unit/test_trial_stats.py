"""The statistics of a model trial: the Wilson interval, stratified allocation, confusion tables."""

from __future__ import annotations

import pytest

from nightshift.migration.trial_stats import FAILED, allocate, confusion, wilson


def test_wilson_matches_the_published_interval():
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81 of 263 -> 0.2553 to 0.3662
    interval = wilson(81, 263)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.2553, 0.3662)


def test_wilson_stays_inside_zero_and_one_and_is_asymmetric_near_them():
    assert wilson(0, 10).low == 0.0 and 0.27 < wilson(0, 10).high < 0.31
    assert wilson(10, 10).high == 1.0 and 0.69 < wilson(10, 10).low < 0.73
    near_one = wilson(1_860, 2_000)
    assert near_one.high - near_one.share < near_one.share - near_one.low


def test_two_thousand_keys_give_an_interval_within_two_and_a_half_points_at_any_agreement():
    for k in (0, 500, 1_000, 1_860, 2_000):
        assert wilson(k, 2_000).half_width <= 0.025
    assert wilson(1_860, 2_000).half_width < 0.012


def test_the_interval_prints_with_its_share_and_size():
    assert str(wilson(1_862, 2_000)) == "93.1% (91.9–94.1%, n=2,000)"


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError, match="between 0 and n=5"):
        wilson(6, 5)


def test_allocation_is_proportional_sums_to_the_size_and_keeps_every_stratum():
    strata = {"billing": 6_000, "bug": 3_000, "other": 990, "rare": 10}
    takes = allocate(strata, 2_000)
    assert sum(takes.values()) == 2_000
    assert takes["rare"] >= 1 and takes["billing"] == pytest.approx(1_200, abs=2)
    assert takes["bug"] == pytest.approx(600, abs=2)


def test_a_stratum_of_one_row_is_still_sampled_and_none_is_a_stratum():
    takes = allocate({"common": 100_000, "once": 1, None: 50}, 100)
    assert takes["once"] == 1 and takes[None] >= 1 and sum(takes.values()) == 100


def test_fewer_rows_than_asked_takes_them_all():
    assert allocate({"a": 3, "b": 4, "c": 0}, 2_000) == {"a": 3, "b": 4}


def test_a_sample_smaller_than_the_strata_is_refused():
    with pytest.raises(ValueError, match="cannot hold one key of each of the 3 strata"):
        allocate({"a": 10, "b": 10, "c": 10}, 2)


def test_the_confusion_table_counts_label_pairs_and_failures():
    table = confusion([("bug", "bug"), ("bug", "billing"), ("billing", "billing"), ("bug", None)])
    assert table == {"billing": {"billing": 1}, "bug": {"billing": 1, "bug": 1, FAILED: 1}}
    assert sum(n for row in table.values() for n in row.values()) == 4
