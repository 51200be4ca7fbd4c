"""The Nightshift dashboard inside Airflow 3: a FastAPI app, its read model and operator links.

Nothing here is imported at package import: ``nightshift.ui.app`` (FastAPI, Jinja2, psycopg)
is loaded only when the API server first serves a dashboard request, so the plugin module
that registers it stays cheap for every other Airflow process.
"""
