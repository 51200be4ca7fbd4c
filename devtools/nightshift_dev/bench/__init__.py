"""Benchmarks (``make bench``): measured in the same process against baselines, never in tests."""
