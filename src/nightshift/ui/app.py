"""The Nightshift dashboard: a FastAPI app that Airflow's API server mounts (see ``nightshift.plugin``).

Pages (server-rendered HTML, no JavaScript) and JSON over the ledger, read through
:mod:`nightshift.ledger.dashboard`:

* ``/`` — the last 30 nights as a chart per workload (batch cost against the streaming path,
  the gap shaded as the saving), the latest night of each workload, every night (paginated);
* ``/runs/{run_pk}`` — one night: counts, cost, items and cost by model, failures by reason, rounds,
  batches (each with its Anthropic Console link), failed items;
* ``/failures`` — failed items filtered by workload, reason, night and date range, paginated,
  with a CSV export;
* ``/airflow-run?dag_id=…&run_id=…`` — the night an Airflow DAG run recorded (operator links
  and the DAG run tab point here);
* ``/trials?workload=…`` — model trials (of one workload); ``/trials/{trial_pk}`` — one trial:
  agreement with its interval, per field, confusion tables, cost per model, the switch gate's verdict;
* ``/api/nights``, ``/api/nights/{run_pk}``, ``/api/series?days=30``, ``/api/failures``,
  ``/api/failures.csv``, ``/api/trials/{trial_pk}``
  — the same data as JSON, and CSV streamed from PostgreSQL.

Authentication is Airflow's own: every route depends on :func:`require_dag_run_read`, which
resolves the caller with the core API's ``get_user`` (a JWT as ``Authorization: Bearer`` or
the UI's ``_token`` cookie, validated by the configured auth manager) and then asks the auth
manager whether that user may read DAG runs. Anonymous API calls get 401, HTML pages redirect
to Airflow's login page; an authenticated user without the permission gets 403.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import DictLoader, Environment, StrictUndefined
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from nightshift.config import settings
from nightshift.ledger import dashboard
from nightshift.ledger.status import RunStatus
from nightshift.ui import charts, urls
from nightshift.ui.templates import TEMPLATES

log = logging.getLogger(__name__)

NIGHTS_PER_PAGE = 30
FAILURES_PER_PAGE = 50
STATEMENT_TIMEOUT = "30s"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
#: While a night is open its page reloads itself this often (a meta refresh: the CSP forbids scripts);
#: a closed night's page stays put.
LIVE_REFRESH_SECONDS = 10
OPEN_NIGHT = (RunStatus.COLLECTING, RunStatus.RUNNING)
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    # Same-origin framing only: the Airflow UI embeds the dashboard, nobody else may.
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"content-security-policy",
     (b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
      b"frame-ancestors 'self'; base-uri 'none'")),
]


# Authentication and authorization: Airflow's, on every route ------------------------------------

class NotPermitted(HTTPException):
    """An authenticated user the auth manager does not let read DAG runs (never a login redirect)."""


def require_dag_run_read(user: GetUserDep) -> BaseUser:
    """The caller, as Airflow's core API authenticates it, if the auth manager lets them read DAG runs.

    ``GetUserDep`` is the core API's own dependency: 401 without a token, 401/403 for an expired
    or invalid one. The permission asked is the one Airflow's DAG-run list needs (GET on DAG
    runs), for all DAGs: the dashboard aggregates every workload's DAG.
    """
    from airflow.api_fastapi.app import get_auth_manager

    if not get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN, user=user):
        raise NotPermitted(403, "Forbidden: the Nightshift dashboard needs permission to read DAG runs")
    return user


def _login_url(request: Request) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=str(request.url))


# The application database ----------------------------------------------------------------------

class DatabaseUnavailable(Exception):
    pass


def _open(target: str, *, statement_timeout: str | None = STATEMENT_TIMEOUT) -> psycopg.Connection:
    """A read-only connection to the application database (``target``: a conn id or a DSN)."""
    from nightshift import db

    try:
        conn = db.connect(target)
    except Exception as exc:  # psycopg.OperationalError, an unknown Airflow connection, ...
        log.warning("Nightshift dashboard: cannot connect to the application database: %s", exc)
        raise DatabaseUnavailable(target if "://" not in target else "the configured DSN") from exc
    try:
        conn.read_only = True
        if statement_timeout:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (statement_timeout,))
    except Exception:
        conn.close()
        raise
    return conn


def connection(request: Request) -> Iterator[psycopg.Connection]:
    conn = _open(request.app.state.nightshift_db)
    try:
        yield conn
    finally:
        conn.close()


Conn = Annotated[psycopg.Connection, Depends(connection)]


# Request parameters -----------------------------------------------------------------------------

def _int(value: str | None, name: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise HTTPException(422, f"{name} must be a whole number, got {value!r}") from None
    if number < 1:
        raise HTTPException(422, f"{name} must be positive, got {number}")
    return number


def _date(value: str | None, name: str) -> date | None:
    if value is None or value.strip() == "":
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise HTTPException(422, f"{name} must be a date (YYYY-MM-DD), got {value!r}") from None


def failure_filter(workload: str | None = None, reason: str | None = None, run_pk: str | None = None,
                   since: str | None = None, until: str | None = None) -> dashboard.FailureFilter:
    """The failures filters from the query string; blank values (an HTML form's) mean "any"."""
    return dashboard.FailureFilter(workload=(workload or "").strip() or None, reason=(reason or "").strip() or None,
                                 run_pk=_int(run_pk, "run_pk"), since=_date(since, "since"),
                                 until=_date(until, "until"), tz=settings().timezone)


Filter = Annotated[dashboard.FailureFilter, Depends(failure_filter)]


def _filter_params(flt: dashboard.FailureFilter) -> dict[str, Any]:
    return {k: v for k, v in {"workload": flt.workload, "reason": flt.reason, "run_pk": flt.run_pk,
                              "since": flt.since, "until": flt.until}.items() if v is not None}


# Rendering -------------------------------------------------------------------------------------

def _base(request: Request) -> str:
    """Where this app is mounted, as seen by the browser (``/nightshift`` inside Airflow)."""
    return request.scope.get("root_path", "").rstrip("/")


def _is_api(request: Request) -> bool:
    path = request.scope.get("path", "")
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path.startswith("/api/")


def _display_tz() -> ZoneInfo:
    return ZoneInfo(settings().timezone)


def _ts(value: datetime | None, *, seconds: bool = False) -> str:
    if value is None:
        return "—"
    tz = _display_tz()
    form = "%Y-%m-%d %H:%M:%S " if seconds else "%Y-%m-%d %H:%M "
    return value.astimezone(tz).strftime(form) + (value.astimezone(tz).tzname() or "")


def _day(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(_display_tz()).date().isoformat()


def _duration(start: datetime | None, end: datetime | None) -> str:
    if not start or not end:
        return "—"
    seconds = max(int((end - start).total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _num(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f}%"


def _share(value: Any, places: int = 1) -> str:
    """A share (0 to 1) as a percentage."""
    return "—" if value is None else f"{100 * float(value):.{places}f}%"


def _ratio(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.0f}%"


def _bytes(value: Any) -> str:
    if value is None:
        return "—"
    size = float(value)
    return f"{size:.0f} B" if size < 1e3 else f"{size / 1e3:.1f} kB" if size < 1e6 else f"{size / 1e6:.1f} MB"


def _environment() -> Environment:
    env = Environment(loader=DictLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=charts.money, pct=_pct, ratio=_ratio, share=_share, num=_num, ts=_ts, day=_day,
                       bytes=_bytes, ts_seconds=lambda v: _ts(v, seconds=True))
    env.globals.update(duration=_duration, console=urls.console_batch_url)
    return env


_ENV = _environment()


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("section", "")
    html = _ENV.get_template(template).render(
        base=_base(request), embedded=request.headers.get("sec-fetch-dest") == "iframe", **context)
    return HTMLResponse(html, status_code=status_code)


def _message(request: Request, status_code: int, heading: str, message: str,
             link: dict[str, str] | None = None) -> HTMLResponse:
    return render(request, "message.html", status_code=status_code, heading=heading, message=message, link=link)


def _pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def _href(base: str, path: str, params: dict[str, Any]) -> str:
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{base}{path}" + (f"?{query}" if query else "")


# JSON shapes -----------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """JSON-ready: money (Decimal) as numbers, timestamps and dates as ISO 8601 strings."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _json(payload: dict) -> JSONResponse:
    return JSONResponse(_plain(payload))


def _night_json(request: Request, night: dict) -> JSONResponse:
    return {**night, "live": night["status"] in OPEN_NIGHT, "links": {
        "dashboard": f"{_base(request)}/runs/{night['run_pk']}",
        "airflow": urls.airflow_dag_run_url(night["dag_id"], night["airflow_run_id"]),
    }}


def _batch_json(batch: dict) -> JSONResponse:
    batch_id = batch["backend_batch_id"]
    return {**batch, "console_url": urls.console_batch_url(batch_id) if batch_id else None}


# The app ---------------------------------------------------------------------------------------

class SecurityHeaders:
    """Adds the dashboard's security headers to every response (a plain ASGI middleware: streams untouched)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((n, v) for n, v in SECURITY_HEADERS if n not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(dsn: str | None = None) -> FastAPI:
    """The dashboard app; it reads ``dsn`` if given (tests), else the ``[nightshift] db_conn_id`` connection."""
    app = FastAPI(title="Nightshift", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(require_dag_run_read)])
    app.state.nightshift_db = dsn or settings().db_conn_id
    app.add_middleware(SecurityHeaders)
    _add_error_handlers(app)
    _add_api_routes(app)
    _add_pages(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request):
            headers = dict(exc.headers or {})
            if exc.status_code == 401:
                headers.setdefault("WWW-Authenticate", "Bearer")
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
        if exc.status_code in (401, 403) and not isinstance(exc, NotPermitted):
            # Not logged in (or the token expired or is not valid): Airflow's login, then back here.
            return RedirectResponse(_login_url(request), status_code=302)
        heading = {403: "Not allowed", 404: "Not found", 422: "Bad request"}.get(exc.status_code, "Error")
        return _message(request, exc.status_code, heading, str(exc.detail),
                        link={"href": f"{_base(request)}/", "text": "All nights"})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return _message(request, 422, "Bad request", problems, link={"href": f"{_base(request)}/", "text": "All nights"})

    @app.exception_handler(DatabaseUnavailable)
    async def database_unavailable(request: Request, exc: DatabaseUnavailable) -> Response:
        detail = f"The application database ({exc}) cannot be reached; try again in a moment."
        if _is_api(request):
            return JSONResponse({"detail": detail}, status_code=503)
        return _message(request, 503, "The ledger is out of reach", detail)


def _add_api_routes(app: FastAPI) -> None:
    @app.get("/api/nights")
    def api_nights(request: Request, conn: Conn, workload: str | None = None,
                   limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> JSONResponse:
        """Nights (ledger runs), newest first, with counts, failures by reason, rounds, batches and cost."""
        if not dashboard.ledger_present(conn):
            return _json({"ledger_present": False, "total": 0, "limit": limit, "offset": offset, "nights": []})
        total, rows = dashboard.nights(conn, workload=workload or None, limit=limit, offset=offset)
        return _json({"ledger_present": True, "total": total, "limit": limit, "offset": offset,
                      "nights": [_night_json(request, r) for r in rows]})

    @app.get("/api/nights/{run_pk}")
    def api_night(request: Request, conn: Conn, run_pk: int) -> JSONResponse:
        """One night with its rounds and batches (each batch with its Anthropic Console URL)."""
        night = dashboard.night(conn, run_pk) if dashboard.ledger_present(conn) else None
        if night is None:
            raise HTTPException(404, f"no night #{run_pk} in the ledger")
        return _json({"night": _night_json(request, night), "rounds": dashboard.rounds(conn, run_pk),
                      "batches": [_batch_json(b) for b in dashboard.batches(conn, run_pk)],
                      "models": dashboard.models_of_night(conn, run_pk)})

    @app.get("/api/trials/{trial_pk}")
    def api_trial(conn: Conn, trial_pk: int) -> JSONResponse:
        """One model trial with its report and the switch gate's verdict on it now."""
        trial = _trial(conn, trial_pk)
        if trial is None:
            raise HTTPException(404, f"no model trial #{trial_pk} in the ledger")
        return _json({"trial": trial, "gate": _gate_verdict(conn, trial)})

    @app.get("/api/series")
    def api_series(conn: Conn, days: int = Query(30, ge=1, le=366)) -> JSONResponse:
        """Cost and savings per workload and night over the last ``days`` nights."""
        tz = settings().timezone
        if not dashboard.ledger_present(conn):
            start, end = dashboard.series_window(days, tz)
            return _json({"ledger_present": False, "days": days, "timezone": tz, "start": start, "end": end,
                          "workloads": {}, "totals": {}})
        series = dashboard.cost_series(conn, days=days, tz=tz)
        series.pop("nights")
        series.pop("total")
        return _json({"ledger_present": True, **series})

    @app.get("/api/failures")
    def api_failures(conn: Conn, flt: Filter, limit: int = Query(50, ge=1, le=500),
                     offset: int = Query(0, ge=0)) -> JSONResponse:
        """Failed items, filterable by workload, reason, run_pk and since/until (nights, inclusive)."""
        if not dashboard.ledger_present(conn):
            return _json({"ledger_present": False, "total": 0, "limit": limit, "offset": offset, "failures": []})
        total, rows = dashboard.failures(conn, flt, limit=limit, offset=offset)
        return _json({"ledger_present": True, "total": total, "limit": limit, "offset": offset, "failures": rows})

    @app.get("/api/failures.csv")
    def api_failures_csv(request: Request, flt: Filter) -> Response:
        """The same failed items as CSV, written by PostgreSQL and streamed as it comes."""
        headers = {"Content-Disposition": 'attachment; filename="nightshift-failures.csv"'}
        conn = _open(request.app.state.nightshift_db, statement_timeout=None)
        try:
            present = dashboard.ledger_present(conn)
        except Exception:
            conn.close()
            raise
        if not present:
            conn.close()
            return Response(dashboard.empty_csv(), media_type=CSV_MEDIA_TYPE, headers=headers)

        def stream() -> Iterator[bytes]:
            try:
                yield from dashboard.failures_csv(conn, flt)
            finally:
                conn.close()

        # The background task closes the connection even if the client leaves before the first chunk.
        return StreamingResponse(stream(), media_type=CSV_MEDIA_TYPE, headers=headers,
                                 background=BackgroundTask(conn.close))


def _add_pages(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, conn: Conn, workload: str | None = None, page: int = Query(1, ge=1)) -> Response:
        if not dashboard.ledger_present(conn):
            return render(request, "index.html", section="nights", ledger_present=False, total_all=0)
        total_all, _ = dashboard.nights(conn, limit=1)
        if not total_all:
            return render(request, "index.html", section="nights", ledger_present=True, total_all=0)
        workload = workload or None
        total, nights = dashboard.nights(conn, workload=workload, limit=NIGHTS_PER_PAGE,
                                       offset=(page - 1) * NIGHTS_PER_PAGE)
        series = dashboard.cost_series(conn, days=30, tz=settings().timezone)
        names = dashboard.workloads(conn)
        charts_ = [{"workload": name, "svg": charts.cost_chart(name, series["nights"], series["workloads"][name])}
                   for name in names if name in series["workloads"]]
        base = _base(request)
        return render(request, "index.html", section="nights", ledger_present=True, total_all=total_all,
                      series=series, charts=charts_, latest=dashboard.latest_nights(conn), workloads=names,
                      workload=workload, nights=nights, total=total, page=page,
                      pages=_pages(total, NIGHTS_PER_PAGE),
                      page_href=lambda p: _href(base, "/", {"workload": workload, "page": p}))

    @app.get("/runs/{run_pk}", response_class=HTMLResponse)
    def run_page(request: Request, conn: Conn, run_pk: int) -> Response:
        night = dashboard.night(conn, run_pk) if dashboard.ledger_present(conn) else None
        if night is None:
            return _message(request, 404, "No such night", f"The ledger has no night #{run_pk}.",
                            link={"href": f"{_base(request)}/", "text": "All nights"})
        _, failures = dashboard.failures(conn, dashboard.FailureFilter(run_pk=run_pk), limit=20)
        return render(request, "run.html", section="nights", n=night, rounds=dashboard.rounds(conn, run_pk),
                      batches=dashboard.batches(conn, run_pk), failures=failures,
                      by_model=dashboard.models_of_night(conn, run_pk),
                      airflow_run_url=urls.airflow_dag_run_url(night["dag_id"], night["airflow_run_id"]),
                      refresh_seconds=LIVE_REFRESH_SECONDS if night["status"] in OPEN_NIGHT else None)

    @app.get("/failures", response_class=HTMLResponse)
    def failures_page(request: Request, conn: Conn, flt: Filter, page: int = Query(1, ge=1)) -> Response:
        if not dashboard.ledger_present(conn):
            return render(request, "failures.html", section="failures", ledger_present=False)
        total, rows = dashboard.failures(conn, flt, limit=FAILURES_PER_PAGE, offset=(page - 1) * FAILURES_PER_PAGE)
        base, params = _base(request), _filter_params(flt)
        return render(request, "failures.html", section="failures", ledger_present=True, flt=flt, rows=rows,
                      total=total, page=page, pages=_pages(total, FAILURES_PER_PAGE),
                      workloads=dashboard.workloads(conn), reasons=dashboard.failure_reasons(conn),
                      csv_href=_href(base, "/api/failures.csv", params),
                      page_href=lambda p: _href(base, "/failures", {**params, "page": p}))

    @app.get("/trials", response_class=HTMLResponse)
    def trials_page(request: Request, conn: Conn, workload: str | None = None) -> Response:
        present = dashboard.ledger_present(conn) and dashboard.trials_present(conn)
        workload = workload or None
        return render(request, "trials.html", section="trials", present=present, workload=workload,
                      trials=dashboard.trials(conn, workload) if present else [],
                      workloads=dashboard.workloads(conn) if present else [])

    @app.get("/trials/{trial_pk}", response_class=HTMLResponse)
    def trial_page(request: Request, conn: Conn, trial_pk: int) -> Response:
        trial = _trial(conn, trial_pk)
        if trial is None:
            return _message(request, 404, "No such trial", f"The ledger has no model trial #{trial_pk}.",
                            link={"href": f"{_base(request)}/trials", "text": "All trials"})
        report = trial["report"] or {}
        return render(request, "trial.html", section="trials", t=trial, report=report,
                      gate=_gate_verdict(conn, trial),
                      confusion=_confusion_tables(report.get("confusion") or {}),
                      switches=dashboard.switches_on_trial(conn, trial_pk))

    @app.get("/airflow-run", response_class=HTMLResponse)
    def airflow_run(request: Request, conn: Conn, dag_id: str, run_id: str) -> Response:
        """The night an Airflow DAG run recorded: where the operator links and the DAG-run tab point."""
        run_pk = dashboard.run_pk_for_airflow_run(conn, dag_id, run_id) if dashboard.ledger_present(conn) else None
        if run_pk is None:
            return _message(
                request, 404, "No Nightshift night for this DAG run",
                f"The ledger has no night recorded by {dag_id} / {run_id}: either this DAG is not a Nightshift "
                "batch DAG, or its collect task has not run yet.",
                link={"href": f"{_base(request)}/", "text": "All nights"})
        return RedirectResponse(f"{_base(request)}/runs/{run_pk}", status_code=303)


# Model trials -----------------------------------------------------------------------------------

def _trial(conn: psycopg.Connection, trial_pk: int) -> dict | None:
    present = dashboard.ledger_present(conn) and dashboard.trials_present(conn)
    return dashboard.trial(conn, trial_pk) if present else None


def _gate_verdict(conn: psycopg.Connection, trial: dict) -> dict[str, Any]:
    """What ``nightshift switch --model <candidate>`` would say of this trial now, against the workload's
    ``migration.min_agreement`` (``clears`` None when there is no verdict to give)."""
    from nightshift.deployment import get_workload
    from nightshift.ledger import model_switches
    from nightshift.migration.switch import gate

    if trial["status"] != "reported":
        return {"clears": None, "threshold": None, "reason": f"no verdict: the trial is {trial['status']}"}
    try:
        workload = get_workload(trial["workload"])
    except Exception as exc:  # the definition is not deployed here, or does not load
        return {"clears": None, "threshold": None,
                "reason": f"no verdict: the workload's definition cannot be read here ({exc})"}
    verdict = gate(conn, workload, model_switches.trial(conn, trial["trial_pk"]))
    return {"clears": verdict.clears, "threshold": workload.migration.min_agreement, "reason": verdict.reason}


def _confusion_tables(confusion: dict[str, dict[str, dict[str, int]]]) -> list[dict[str, Any]]:
    """Per enum field: the current labels as rows, the candidate's answers as columns."""
    tables = []
    for field_name, rows in confusion.items():
        answers = sorted({answer for counts in rows.values() for answer in counts} | set(rows))
        tables.append({"field": field_name, "answers": answers, "rows": [
            {"label": label, "total": sum(counts.values()),
             "cells": [{"n": counts.get(answer, 0), "same": answer == label} for answer in answers]}
            for label, counts in sorted(rows.items())]})
    return tables
