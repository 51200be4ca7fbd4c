"""Cost arithmetic against hand-computed cases, and the warm-up decision."""

from __future__ import annotations

import shutil
from decimal import Decimal

import pytest
import yaml

from nightshift import paths
from nightshift.batch.costing import decide_warmup
from nightshift.costs import UnknownModel, Usage, price_table
from nightshift.deployment import get_workload, load_workloads
from nightshift.workloads import WorkloadDefinitionError

HAIKU = "claude-haiku-4-5"  # $1 in / $5 out per million; cache write 5m 1.25, 1h 2.00, read 0.10


def cost(usage: Usage, **kw) -> Decimal:
    return price_table().cost(usage, HAIKU, **kw)


@pytest.mark.parametrize(
    ("usage", "batch", "streaming"),
    [
        # 1,000 in + 200 out: (1000 x 1 + 200 x 5) / 1e6 = 0.002 streaming, half in a batch
        (Usage(input_tokens=1000, output_tokens=200), "0.001", "0.002"),
        # a 5-minute cache write of 4,000 tokens: 4000 x 1.25 / 1e6
        (Usage(cache_write_5m_tokens=4000), "0.0025", "0.005"),
        # a 1-hour write costs more: 4000 x 2.00 / 1e6
        (Usage(cache_write_1h_tokens=4000), "0.004", "0.008"),
        # a read: 4000 x 0.10 / 1e6; the batch discount applies to cache tokens too
        (Usage(cache_read_tokens=4000), "0.0002", "0.0004"),
    ],
)
def test_hand_computed_costs(usage, batch, streaming):
    assert cost(usage, batch=True) == Decimal(batch)
    assert cost(usage, batch=False) == Decimal(streaming)


def test_uncached_streaming_prices_every_input_token_as_plain_input():
    usage = Usage(input_tokens=100, output_tokens=10, cache_write_1h_tokens=4000, cache_read_tokens=8000)
    assert usage.total_input_tokens == 12_100
    assert cost(usage, batch=False, cached=False) == Decimal("0.01215")  # (12100 x 1 + 10 x 5) / 1e6
    assert cost(usage, batch=False) == Decimal("0.00895")  # (100 + 8000 + 800 + 50) / 1e6


def test_unknown_model_is_an_error_not_a_zero():
    with pytest.raises(UnknownModel, match="'claude-imaginary-1' is not in the price table"):
        price_table().price("claude-imaginary-1")


def test_a_workload_with_an_unpriced_model_is_refused_at_load(tmp_path):
    target = tmp_path / "workloads"
    shutil.copytree((paths.PROJECT_ROOT / "workloads"), target)
    path = target / "ticket_classification.yaml"
    data = yaml.safe_load(path.read_text())
    data["model"] = "claude-imaginary-1"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(WorkloadDefinitionError, match=r"workload 'ticket_classification' .*field model: .*(price|model) table"):
        load_workloads(target)


def test_a_cache_busting_prefix_is_refused_naming_the_differing_part(tmp_path):
    target = tmp_path / "workloads"
    shutil.copytree((paths.PROJECT_ROOT / "workloads"), target)
    (target / "prompts" / "busting.md").write_text("You route tickets for a {customer_tier} customer.\n")
    path = target / "ticket_classification.yaml"
    data = yaml.safe_load(path.read_text())
    data["prompt"]["instructions_file"] = "prompts/busting.md"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(WorkloadDefinitionError) as raised:
        load_workloads(target)
    assert "workload 'ticket_classification'" in str(raised.value)
    assert "instructions renders per-item value(s) {customer_tier}" in str(raised.value)


def test_warmup_only_when_the_saving_exceeds_its_cost():
    workload = get_workload("ticket_classification")  # claude-haiku-5-5: 1h write $0.20, read $0.01, output $0.50
    # 2 requests x 0.5 expected misses x 4,500 tokens x (0.20 - 0.01) x 0.5 / 1e6 = $0.0004275
    # warm-up: 4,500 x 0.20 / 1e6 + one output token $0.0000005 = $0.0009005
    small = decide_warmup(workload, price_table(), prefix_tokens=4500, requests=2)
    assert (small.cacheable, small.warmup) == (True, False)
    assert small.expected_saving_usd == pytest.approx(0.0004275)
    assert small.warmup_cost_estimate_usd == pytest.approx(0.0009005)
    large = decide_warmup(workload, price_table(), prefix_tokens=4500, requests=1000)
    assert large.warmup and large.expected_saving_usd == pytest.approx(0.21375)


def test_a_prefix_under_the_minimum_is_not_cached_and_says_why():
    plan = decide_warmup(get_workload("ticket_classification"), price_table(), prefix_tokens=500, requests=10_000)
    assert (plan.cacheable, plan.warmup) == (False, False)
    assert "under claude-haiku-5-5's minimum cacheable length of 512" in plan.reason


def test_every_priced_model_is_in_the_model_table_and_every_figure_names_its_page():
    import yaml

    from nightshift.model_table import model_table

    assert set(price_table().rows) == set(model_table().models)
    raw = yaml.safe_load((paths.package_data("prices.yaml")).read_text())
    for model, spec in raw["models"].items():
        for row in spec["prices"]:
            assert row["source"] in raw["pages"], (model, row["from"])
        assert spec["min_cacheable_source"] in raw["pages"], model
    assert all(str(page["read_on"]) == "2026-12-01" for page in raw["pages"].values())


def test_rows_are_effective_dated_and_the_long_prompt_band_covers_every_token():
    from datetime import date

    from nightshift.costs import Usage

    table = price_table()
    assert table.price("claude-sonnet-5-5", date(2026, 10, 6)).rates.cache_read == Decimal("0.20")
    assert table.price("claude-sonnet-5-5", date(2026, 10, 7)).rates.cache_read == Decimal("0.10")
    with pytest.raises(UnknownModel, match="no price in force on 2026-01-01"):
        table.price("claude-haiku-5-5", date(2026, 1, 1))
    at_threshold = Usage(input_tokens=60_000, cache_read_tokens=40_000, output_tokens=1_000)
    over = Usage(input_tokens=60_000, cache_read_tokens=40_001, output_tokens=1_000)
    # up to 100,000 prompt tokens: 60,000 x $0.10 + 40,000 x $0.01 + 1,000 x $0.50 = $0.0069
    assert table.cost(at_threshold, "claude-haiku-5-5", batch=False) == Decimal("0.0069")
    # over it, every token at the band's rates: 60,000 x $0.50 + 40,001 x $0.05 + 1,000 x $2.50
    assert table.cost(over, "claude-haiku-5-5", batch=False) == Decimal("0.03450005")
    assert table.cost(over, "claude-haiku-5-5", batch=True) == Decimal("0.03450005") * Decimal("0.5")


def test_a_retired_model_is_refused_at_load(tmp_path):
    target = tmp_path / "workloads"
    shutil.copytree((paths.PROJECT_ROOT / "workloads"), target)
    path = target / "ticket_classification.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(model="claude-sonnet-4-5", effort=None)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(WorkloadDefinitionError, match="was retired on 2026-11-30"):
        load_workloads(target)


def test_a_model_table_fact_without_a_page_is_refused(tmp_path):
    from nightshift.model_table import load_model_table

    raw = yaml.safe_load((paths.package_data("models.yaml")).read_text())
    del raw["models"]["claude-haiku-5-5"]["sources"]["effort"]
    broken = tmp_path / "models.yaml"
    broken.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"'claude-haiku-5-5' names no page .*\['effort'\]"):
        load_model_table(broken)
