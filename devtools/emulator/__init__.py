"""A local, deterministic emulator of the Anthropic Messages and Message Batches APIs.

It speaks real HTTP so the official ``anthropic`` SDK and the Airflow provider run against it
unchanged, keeps all of its state in one SQLite file (so it survives ``kill -9``), and runs
batches on a controllable virtual clock so a 24-hour expiry can be tested in milliseconds.
See ``docs/emulator.md`` for how to run and steer it.
"""

from emulator.version import __version__

__all__ = ["__version__"]
