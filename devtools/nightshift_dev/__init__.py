"""This repository's own tooling, not shipped in the runtime package: the local Postgres and
Airflow, the demo, its data and the benchmarks (the emulator is its own package beside it)."""
