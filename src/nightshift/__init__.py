"""Nightshift: move Claude work nobody is waiting on onto the Message Batches API, from Airflow 3."""

__version__ = "0.2.0"
