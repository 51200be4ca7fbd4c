"""The batch path's steps as plain functions over a psycopg connection and an SDK client.

The Airflow operators, sensor and trigger are thin shells around these, so each step can be
tested, benchmarked and reasoned about without a scheduler.
"""
