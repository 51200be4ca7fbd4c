"""The batch path's core: its steps as plain functions, in data-flow order.

collect (queue or interval → ledger items) → submit (preflight, split, spool, create through a
:class:`~nightshift.backends.BatchBackend`) → wait (:mod:`.polling`'s wait policy, :mod:`.deadline`)
→ land (outcomes → validated replies → the destination table) → finalize (costs, the run's verdict).

Each takes a psycopg connection, a workload and a backend, and imports neither Airflow nor a vendor
SDK; the operators, sensor and trigger translate between Airflow and these, so each step can be
tested, benchmarked and reasoned about without a scheduler.
"""
