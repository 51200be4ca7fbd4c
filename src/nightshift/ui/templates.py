"""The dashboard's Jinja2 templates, kept in Python so they ship wherever the package does.

Rendered with autoescaping on. No JavaScript: every page works as plain HTML (forms use GET,
tooltips are SVG ``<title>`` elements), which also lets the Content-Security-Policy forbid
scripts outright.
"""

from __future__ import annotations

BASE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}Nightshift{% endblock %} · Nightshift</title>
{% block head %}{% endblock %}
<style>
:root { --fg:#1a202c; --muted:#5a6577; --bg:#ffffff; --panel:#f6f8fb; --line:#dde3ec; --accent:#1f3a5f;
        --cost:#1f3a5f; --saved:#9fd8b4; --streaming:#c2410c; --bad:#b42318; --ok:#1e7b45; --warn:#a15c07; }
@media (prefers-color-scheme: dark) {
  :root { --fg:#e6eaf0; --muted:#9aa5b5; --bg:#12161c; --panel:#1b2129; --line:#2c3440; --accent:#8fb3e0;
          --cost:#8fb3e0; --saved:#2f6b47; --streaming:#f59e61; --bad:#f97066; --ok:#5fd08f; --warn:#f0b34a; }
}
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; gap:1.5rem; align-items:baseline; padding:.8rem 1.2rem; border-bottom:1px solid var(--line); }
header .brand { font-weight:700; font-size:1.1rem; color:var(--accent); text-decoration:none; }
header nav a { margin-right:1rem; color:var(--fg); text-decoration:none; }
header nav a.current { font-weight:600; border-bottom:2px solid var(--accent); }
main { padding:1rem 1.2rem 2rem; max-width:1400px; }
h1 { font-size:1.35rem; margin:.2rem 0 .8rem; } h2 { font-size:1.1rem; margin:1.6rem 0 .6rem; } h3 { font-size:1rem; margin:1rem 0 .3rem; }
a { color:var(--accent); }
table { border-collapse:collapse; width:100%; margin:.3rem 0 1rem; }
th, td { text-align:left; padding:.35rem .55rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-weight:600; color:var(--muted); white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.ts { white-space:nowrap; }
td.msg { max-width:42rem; overflow-wrap:anywhere; }
code, .mono { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:.9em; }
.muted { color:var(--muted); }
.panel { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:1rem 1.2rem; }
.empty { max-width:46rem; margin:2rem 0; }
.badge { display:inline-block; padding:0 .45rem; border-radius:9px; font-size:.85em; border:1px solid currentColor; }
.status-succeeded { color:var(--ok); } .status-failed { color:var(--bad); } .status-running, .status-collecting { color:var(--warn); }
.status-empty { color:var(--muted); }
.facts { display:grid; grid-template-columns:max-content 1fr; gap:.2rem 1rem; margin:0; }
.facts dt { color:var(--muted); } .facts dd { margin:0; }
.figures { display:flex; flex-wrap:wrap; gap:.8rem; margin:.6rem 0 1rem; }
.figure { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:.5rem .9rem; min-width:8rem; }
.figure b { display:block; font-size:1.3rem; font-variant-numeric:tabular-nums; }
.charts { display:grid; grid-template-columns:repeat(auto-fit, minmax(420px, 1fr)); gap:1rem; }
svg.chart { display:block; max-width:100%; height:auto; }
svg.chart .grid { stroke:var(--line); stroke-width:1; } svg.chart .baseline { stroke:var(--muted); stroke-width:1; }
svg.chart .axis { fill:var(--muted); font-size:11px; }
svg.chart rect.cost { fill:var(--cost); } svg.chart rect.saved { fill:var(--saved); }
svg.chart circle.streaming { fill:var(--streaming); } svg.chart .streaming-line { fill:none; stroke:var(--streaming); stroke-width:1.5; }
.legend { font-size:.9em; color:var(--muted); margin:.2rem 0 0; }
.legend i { display:inline-block; width:.8em; height:.8em; margin:0 .3em 0 .9em; vertical-align:-1px; }
.legend .cost { background:var(--cost); } .legend .saved { background:var(--saved); }
.legend .streaming { background:var(--streaming); border-radius:50%; }
form.filters { display:flex; flex-wrap:wrap; gap:.6rem 1rem; align-items:end; margin:.4rem 0 1rem; }
form.filters label { display:flex; flex-direction:column; font-size:.85em; color:var(--muted); gap:.15rem; }
form.filters input, form.filters select, form.filters button { font:inherit; padding:.25rem .4rem; color:var(--fg); background:var(--bg); border:1px solid var(--line); border-radius:4px; }
.pager { display:flex; gap:1rem; align-items:center; }
.tabs a { margin-right:.8rem; }
td.same { font-weight:600; background:var(--panel); }
.verdict-clears { color:var(--ok); } .verdict-refused { color:var(--bad); } .verdict-none { color:var(--muted); }
footer { padding:1rem 1.2rem; color:var(--muted); font-size:.85em; border-top:1px solid var(--line); }
</style>
</head>
<body>
<header>
  <a class="brand" href="{{ base }}/">Nightshift</a>
  <nav>
    <a href="{{ base }}/" class="{{ 'current' if section == 'nights' }}">Nights</a>
    <a href="{{ base }}/failures" class="{{ 'current' if section == 'failures' }}">Failures</a>
    <a href="{{ base }}/trials" class="{{ 'current' if section == 'trials' }}">Trials</a>
  </nav>
</header>
<main>
{% block main %}{% endblock %}
</main>
<footer>
  Read from the Nightshift ledger (<code>nightshift.runs</code>, <code>batches</code>, <code>items</code>, <code>run_costs</code>).
  JSON: <a href="{{ base }}/api/nights">/api/nights</a>, <a href="{{ base }}/api/series?days=30">/api/series</a>, <a href="{{ base }}/api/failures">/api/failures</a>.
  {% if embedded %}<br>Inside the Airflow UI, links that leave this page (Anthropic Console, Airflow run pages) open with your
  browser's “Open link in new tab”: the Airflow frame blocks pop-ups. Outside the frame the dashboard lives at <code>{{ base }}/</code>.{% endif %}
</footer>
</body>
</html>
"""

MACROS = """
{% macro status(value) %}<span class="badge status-{{ value }}">{{ value }}</span>{% endmacro %}
{% macro reasons(by_reason, run_pk=None) -%}
  {%- for reason, count in by_reason|dictsort(by='value', reverse=true) -%}
    {%- if run_pk is not none -%}<a href="{{ base }}/failures?run_pk={{ run_pk }}&amp;reason={{ reason|urlencode }}">{{ reason }}</a>{%- else -%}{{ reason }}{%- endif %} {{ count }}{{ ", " if not loop.last }}
  {%- else -%}<span class="muted">—</span>{%- endfor -%}
{%- endmacro %}
{% macro empty_state(ledger_present) %}
<div class="panel empty">
  <h1>No nights yet</h1>
  {% if not ledger_present %}
  <p>The application database has no Nightshift ledger yet (schema <code>nightshift</code>): nothing has run here.
     <code>nightshift db-init</code> creates it; the first batch night fills it.</p>
  {% else %}
  <p>The ledger is there but no batch night has run. Trigger a <code>nightshift_batch_&lt;workload&gt;</code> DAG
     (or wait for its schedule): each night appears here with its requests, retry rounds, batches, failures and
     what it cost against the streaming path.</p>
  {% endif %}
</div>
{% endmacro %}
{% macro pager(page, pages, total, href) %}
{% if pages > 1 %}
<p class="pager">
  {% if page > 1 %}<a href="{{ href(page - 1) }}" rel="prev">← newer</a>{% else %}<span class="muted">← newer</span>{% endif %}
  <span>page {{ page }} of {{ pages }} · {{ total|num }} in all</span>
  {% if page < pages %}<a href="{{ href(page + 1) }}" rel="next">older →</a>{% else %}<span class="muted">older →</span>{% endif %}
</p>
{% endif %}
{% endmacro %}
"""

INDEX = """{% extends "base.html" %}{% from "macros.html" import status, reasons, empty_state, pager with context %}
{% block title %}Nights{% endblock %}
{% block main %}
{% if not ledger_present or not total_all %}
  {{ empty_state(ledger_present) }}
{% else %}
<h1>Nights</h1>
<section aria-labelledby="series-h">
  <h2 id="series-h">The last {{ series.days }} nights: batch cost against the streaming path</h2>
  {% set t = series.total %}
  {% if t.runs %}
  <p>Paid <b>{{ t.cost_usd|money }}</b> on the batch path for {{ t.runs }} priced night{{ "s" if t.runs != 1 }}
     ({{ series.start }} to {{ series.end }}, {{ series.timezone }}); the same tokens streamed without cache would have cost
     <b>{{ t.streaming_uncached_usd|money }}</b> (with cache {{ t.streaming_cached_usd|money }}):
     saved <b>{{ t.savings_usd|money }}</b>{% if t.savings_pct is not none %} ({{ t.savings_pct|pct }}){% endif %}.</p>
  {% else %}
  <p class="muted">No night was priced between {{ series.start }} and {{ series.end }}.</p>
  {% endif %}
  <div class="charts">
  {% for chart in charts %}
    <figure class="panel" style="margin:0">
      <h3>{{ chart.workload }}</h3>
      {{ chart.svg }}
      <figcaption class="legend"><i class="cost"></i>batch cost<i class="saved"></i>saved<i class="streaming"></i>streaming, no cache
        {% set tw = series.totals[chart.workload] %}· {{ tw.runs }} night{{ "s" if tw.runs != 1 }}, paid {{ tw.cost_usd|money }}, saved {{ tw.savings_usd|money }}{% if tw.savings_pct is not none %} ({{ tw.savings_pct|pct }}){% endif %}</figcaption>
    </figure>
  {% endfor %}
  </div>
</section>

<section aria-labelledby="latest-h">
  <h2 id="latest-h">The latest night of each workload</h2>
  <table>
    <thead><tr><th>workload</th><th>night</th><th>started</th><th class="num">requests</th><th class="num">succeeded</th>
      <th class="num">failed</th><th>failed by reason</th><th class="num">retry rounds</th><th class="num">batches</th>
      <th class="num">cost</th><th class="num">saved</th></tr></thead>
    <tbody>
    {% for n in latest %}
      <tr><td>{{ n.workload }}</td><td><a href="{{ base }}/runs/{{ n.run_pk }}">#{{ n.run_pk }}</a> {{ status(n.status) }}</td>
        <td>{{ n.created_at|ts }}</td><td class="num">{{ n.requests|num }}</td><td class="num">{{ n.succeeded|num }}</td>
        <td class="num">{{ n.failed|num }}</td><td>{{ reasons(n.failed_by_reason, n.run_pk) }}</td>
        <td class="num">{{ n.retry_rounds }}</td><td class="num">{{ n.batches }}</td>
        <td class="num">{{ n.cost.cost_usd|money }}</td>
        <td class="num">{{ n.cost.savings_usd|money }}{% if n.cost.savings_pct is not none %} <span class="muted">({{ n.cost.savings_pct|pct }})</span>{% endif %}</td></tr>
    {% endfor %}
    </tbody>
  </table>
</section>

<section aria-labelledby="nights-h">
  <h2 id="nights-h">Every night{% if workload %} of {{ workload }}{% endif %}</h2>
  <p class="tabs">Workload:
    <a href="{{ base }}/" {% if not workload %}aria-current="page"{% endif %}>all</a>
    {% for w in workloads %}<a href="{{ base }}/?workload={{ w|urlencode }}" {% if w == workload %}aria-current="page"{% endif %}>{{ w }}</a>{% endfor %}
  </p>
  {% if workload %}<p><a href="{{ base }}/trials?workload={{ workload|urlencode }}">Model trials of {{ workload }}</a></p>{% endif %}
  <table class="nights">
    <thead><tr><th>night</th><th>workload</th><th>started</th><th>status</th><th class="num">requests</th>
      <th class="num">succeeded</th><th class="num">failed</th><th class="num">retry rounds</th><th class="num">batches</th>
      <th class="num">cost</th><th class="num">streaming</th><th class="num">saved</th><th class="num">cache hits</th></tr></thead>
    <tbody>
    {% for n in nights %}
      <tr data-run="{{ n.run_pk }}"><td><a href="{{ base }}/runs/{{ n.run_pk }}">#{{ n.run_pk }}</a></td><td>{{ n.workload }}</td>
        <td>{{ n.created_at|ts }}</td><td>{{ status(n.status) }}</td>
        <td class="num">{{ n.requests|num }}</td><td class="num">{{ n.succeeded|num }}</td>
        <td class="num">{% if n.failed %}<a href="{{ base }}/failures?run_pk={{ n.run_pk }}">{{ n.failed|num }}</a>{% else %}0{% endif %}</td>
        <td class="num">{{ n.retry_rounds }}</td><td class="num">{{ n.batches }}</td>
        <td class="num">{{ n.cost.cost_usd|money }}</td><td class="num">{{ n.cost.streaming_uncached_usd|money }}</td>
        <td class="num">{{ n.cost.savings_usd|money }}{% if n.cost.savings_pct is not none %} <span class="muted">({{ n.cost.savings_pct|pct }})</span>{% endif %}</td>
        <td class="num">{{ n.cost.cache_hit_ratio|ratio }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {{ pager(page, pages, total, page_href) }}
</section>
{% endif %}
{% endblock %}
"""

RUN = """{% extends "base.html" %}{% from "macros.html" import status, reasons with context %}
{% block title %}Night #{{ n.run_pk }} · {{ n.workload }}{% endblock %}
{% block head %}{% if refresh_seconds %}<meta http-equiv="refresh" content="{{ refresh_seconds }}">{% endif %}{% endblock %}
{% block main %}
<h1>Night #{{ n.run_pk }} · {{ n.workload }} {{ status(n.status) }}</h1>
{% if refresh_seconds %}<p class="muted live">While the night runs this page reloads itself every {{ refresh_seconds }} s.</p>{% endif %}
<dl class="facts">
  <dt>Airflow run</dt><dd><a href="{{ airflow_run_url }}" target="_blank" rel="noopener">{{ n.dag_id }} / {{ n.airflow_run_id }}</a></dd>
  <dt>started</dt><dd>{{ n.created_at|ts }}</dd>
  <dt>finished</dt><dd>{{ n.finished_at|ts }}{% if n.finished_at %} <span class="muted">({{ duration(n.created_at, n.finished_at) }})</span>{% endif %}</dd>
  <dt>deadline</dt><dd>{{ n.deadline_at|ts }}</dd>
  <dt>last poll</dt><dd class="last-poll">{{ n.last_poll_at|ts_seconds }}</dd>
  <dt>next poll</dt><dd class="next-poll">{% if n.next_poll_at %}{{ n.next_poll_at|ts_seconds }}{% else %}<span class="muted">none: no batch is being waited for</span>{% endif %}</dd>
  {% if n.data_interval_start %}<dt>data interval</dt><dd>{{ n.data_interval_start|ts }} → {{ n.data_interval_end|ts }}</dd>{% endif %}
  <dt>model</dt><dd><code>{{ n.model }}</code>{% if n.mode != 'queue' %} · mode {{ n.mode }}{% endif %}</dd>
  {% if n.message %}<dt>message</dt><dd>{{ n.message }}</dd>{% endif %}
</dl>

<div class="figures">
  <div class="figure"><b>{{ n.requests|num }}</b>requests</div>
  <div class="figure"><b>{{ n.succeeded|num }}</b>succeeded</div>
  <div class="figure"><b>{{ n.failed|num }}</b>failed</div>
  {% if n.open %}<div class="figure"><b>{{ n.open|num }}</b>still open</div>{% endif %}
  <div class="figure"><b>{{ n.retry_rounds }}</b>retry rounds</div>
  <div class="figure"><b>{{ n.batches }}</b>batches</div>
  <div class="figure"><b>{{ n.cost.cost_usd|money }}</b>cost</div>
  <div class="figure"><b>{{ n.cost.savings_usd|money }}</b>saved{% if n.cost.savings_pct is not none %} ({{ n.cost.savings_pct|pct }}){% endif %}</div>
</div>

<h2>Cost against the streaming path</h2>
{% if n.cost.cost_usd is none %}
<p class="muted">Not priced yet: finalize prices the night when it closes.</p>
{% else %}
<table style="width:auto">
  <tr><th>batch path (actual, warm-up included)</th><td class="num">{{ n.cost.cost_usd|money }}</td></tr>
  <tr><th>streaming, no cache</th><td class="num">{{ n.cost.streaming_uncached_usd|money }}</td></tr>
  <tr><th>streaming, with cache</th><td class="num">{{ n.cost.streaming_cached_usd|money }}</td></tr>
  <tr><th>saved (against streaming, no cache)</th><td class="num">{{ n.cost.savings_usd|money }}{% if n.cost.savings_pct is not none %} ({{ n.cost.savings_pct|pct }}){% endif %}</td></tr>
  <tr><th>cache hit ratio</th><td class="num">{{ n.cost.cache_hit_ratio|ratio }}</td></tr>
</table>
{% endif %}

<h2>Items and cost by model</h2>
{% if by_model %}
<table class="by-model" style="width:auto">
  <thead><tr><th>model</th><th class="num">items</th><th class="num">succeeded</th><th class="num">failed</th>
    <th class="num">cost</th></tr></thead>
  <tbody>
  {% for m in by_model %}
    <tr data-model="{{ m.model }}"><td><code>{{ m.model }}</code></td><td class="num">{{ m['items']|num }}</td>
      <td class="num">{{ m.succeeded|num }}</td><td class="num">{{ m.failed|num }}</td>
      <td class="num">{{ m.cost_usd|money }}</td></tr>
  {% endfor %}
  </tbody>
</table>
<p class="muted">An item counts under the model it was last sent to; the cost is what the API billed each model
   for this night's results (warm-up calls are in the night's total only).</p>
{% if n.last_model_alone_usd is not none %}
<p class="last-model-alone">The same night on the cascade's last model alone would have cost
   <b>{{ n.last_model_alone_usd|money }}</b> (paid {{ n.cost.cost_usd|money }}).</p>
{% endif %}
{% else %}<p class="muted">No item yet.</p>{% endif %}

<h2>Failures by reason</h2>
{% if n.failed %}
<table style="width:auto">
  <thead><tr><th>reason</th><th class="num">items</th></tr></thead>
  <tbody>
  {% for reason, count in n.failed_by_reason|dictsort(by='value', reverse=true) %}
    <tr><td><a href="{{ base }}/failures?run_pk={{ n.run_pk }}&amp;reason={{ reason|urlencode }}">{{ reason }}</a></td><td class="num">{{ count|num }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% else %}<p class="muted">No request failed.</p>{% endif %}

<h2>Rounds</h2>
{% if rounds %}
<table>
  <thead><tr><th>round</th><th class="num">batches</th><th class="num">requests submitted</th><th class="num">succeeded here</th>
    <th class="num">failed here</th><th class="num">open</th><th>first submitted</th><th>last ended</th><th>last landed</th></tr></thead>
  <tbody>
  {% for r in rounds %}
    <tr><td>{{ "round 0 (the night)" if r.round == 0 else "retry " ~ r.round }}</td><td class="num">{{ r.batches }}</td>
      <td class="num">{{ r.submitted|num }}</td><td class="num">{{ r.succeeded|num }}</td><td class="num">{{ r.failed|num }}</td>
      <td class="num">{{ r.open|num }}</td><td>{{ r.first_submitted_at|ts }}</td><td>{{ r.last_ended_at|ts }}</td><td>{{ r.last_landed_at|ts }}</td></tr>
  {% endfor %}
  </tbody>
</table>
<p class="muted">An item counts in the round it ended in: a request retried in round 1 is not counted in round 0.</p>
{% else %}<p class="muted">Nothing was submitted.</p>{% endif %}

<h2>Batches</h2>
{% if batches %}
<table class="batches">
  <thead><tr><th>round</th><th>batch</th><th>ledger status</th><th>API status</th><th class="num">requests</th>
    <th>API counts</th><th class="num">body</th><th>intent</th><th>submitted</th><th>ended</th><th>landed</th></tr></thead>
  <tbody>
  {% for b in batches %}
    <tr><td>{{ b.round }} <span class="muted">#{{ b.seq + 1 }}</span></td>
      <td class="mono">{% if b.backend_batch_id %}<a href="{{ console(b.backend_batch_id) }}" target="_blank" rel="noopener" title="open in the Anthropic Console">{{ b.backend_batch_id }}</a>{% else %}<span class="muted">not created</span>{% endif %}
        {% if b.recovery %}<br><span class="muted">recovery: {{ b.recovery }}</span>{% endif %}</td>
      <td>{{ b.status }}</td><td>{{ b.processing_status or "—" }}</td><td class="num">{{ b.request_count|num }}</td>
      <td>{% if b.request_counts %}{% for k, v in b.request_counts|dictsort if v %}{{ k }} {{ v|num }}{{ ", " if not loop.last }}{% else %}—{% endfor %}{% else %}—{% endif %}</td>
      <td class="num">{{ b.body_bytes|bytes }}</td>
      <td class="ts">{{ b.intent_at|ts }}</td>
      <td class="ts">{{ b.submitted_at|ts }}</td>
      <td class="ts">{{ b.ended_at|ts }}{% if b.ended_at and b.submitted_at %}<br><span class="muted">{{ duration(b.submitted_at, b.ended_at) }} after submit</span>{% endif %}</td>
      <td class="ts">{{ b.landed_at|ts }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% else %}<p class="muted">No batch.</p>{% endif %}

<h2>Failed items</h2>
{% if failures %}
<table>
  <thead><tr><th>custom_id</th><th>source key</th><th>round</th><th>reason</th><th>message</th></tr></thead>
  <tbody>
  {% for f in failures %}
    <tr><td class="mono">{{ f.custom_id }}</td><td class="mono">{{ f.source_key }}</td><td>{{ f.round }}</td><td>{{ f.error_type }}</td><td class="msg">{{ f.error_message or "" }}</td></tr>
  {% endfor %}
  </tbody>
</table>
<p><a href="{{ base }}/failures?run_pk={{ n.run_pk }}">All {{ n.failed|num }} failed items of this night</a> ·
   <a href="{{ base }}/api/failures.csv?run_pk={{ n.run_pk }}">CSV</a></p>
{% else %}<p class="muted">None.</p>{% endif %}
{% endblock %}
"""

FAILURES = """{% extends "base.html" %}{% from "macros.html" import empty_state, pager with context %}
{% block title %}Failures{% endblock %}
{% block main %}
{% if not ledger_present %}
  {{ empty_state(ledger_present) }}
{% else %}
<h1>Failed items</h1>
<form class="filters" method="get" action="{{ base }}/failures">
  <label>workload
    <select name="workload"><option value="">all</option>
      {% for w in workloads %}<option value="{{ w }}" {{ "selected" if w == flt.workload }}>{{ w }}</option>{% endfor %}
    </select></label>
  <label>reason
    <select name="reason"><option value="">all</option>
      {% for r in reasons %}<option value="{{ r }}" {{ "selected" if r == flt.reason }}>{{ r }}</option>{% endfor %}
    </select></label>
  <label>night (run #)<input name="run_pk" type="number" min="1" value="{{ flt.run_pk if flt.run_pk is not none }}" style="width:7em"></label>
  <label>from<input name="since" type="date" value="{{ flt.since or '' }}"></label>
  <label>to<input name="until" type="date" value="{{ flt.until or '' }}"></label>
  <button type="submit">Filter</button>
  <a href="{{ base }}/failures">clear</a>
</form>
<p>{{ total|num }} failed item{{ "s" if total != 1 }}{% if total %} · <a href="{{ csv_href }}" download>Download CSV</a>{% endif %}</p>
{% if rows %}
<table class="failures">
  <thead><tr><th>night</th><th>workload</th><th>round</th><th>custom_id</th><th>source key</th><th>reason</th><th>message</th></tr></thead>
  <tbody>
  {% for f in rows %}
    <tr><td><a href="{{ base }}/runs/{{ f.run_pk }}">#{{ f.run_pk }}</a> <span class="muted">{{ f.run_created_at|day }}</span></td>
      <td>{{ f.workload }}</td><td>{{ f.round }}</td><td class="mono">{{ f.custom_id }}</td><td class="mono">{{ f.source_key }}</td>
      <td>{{ f.error_type }}</td><td class="msg">{{ f.error_message or "" }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{{ pager(page, pages, total, page_href) }}
{% else %}
<p class="muted">No failed item matches these filters.</p>
{% endif %}
{% endif %}
{% endblock %}
"""

MESSAGE = """{% extends "base.html" %}
{% block title %}{{ heading }}{% endblock %}
{% block main %}
<div class="panel empty">
  <h1>{{ heading }}</h1>
  <p>{{ message }}</p>
  {% if link %}<p><a href="{{ link.href }}">{{ link.text }}</a></p>{% endif %}
</div>
{% endblock %}
"""

TRIALS = """{% extends "base.html" %}
{% block title %}Model trials{% endblock %}
{% block main %}
<h1>Model trials{% if workload %} of {{ workload }}{% endif %}</h1>
{% if not present %}
<div class="panel empty"><p>The ledger has no model trials yet (<code>nightshift.model_trials</code>):
  <code>nightshift db upgrade</code> creates the table, <code>nightshift trial --workload W --candidate MODEL</code>
  runs one.</p></div>
{% else %}
<p class="tabs">Workload:
  <a href="{{ base }}/trials" {% if not workload %}aria-current="page"{% endif %}>all</a>
  {% for w in workloads %}<a href="{{ base }}/trials?workload={{ w|urlencode }}" {% if w == workload %}aria-current="page"{% endif %}>{{ w }}</a>{% endfor %}
</p>
{% if trials %}
<table class="trials">
  <thead><tr><th>trial</th><th>workload</th><th>current → candidate</th><th>status</th><th class="num">sample</th>
    <th class="num">agreement</th><th>95% interval</th><th>started</th><th>reported</th></tr></thead>
  <tbody>
  {% for t in trials %}
    <tr data-trial="{{ t.trial_pk }}"><td><a href="{{ base }}/trials/{{ t.trial_pk }}">#{{ t.trial_pk }}</a></td>
      <td><a href="{{ base }}/?workload={{ t.workload|urlencode }}">{{ t.workload }}</a></td>
      <td><code>{{ t.current_model }}</code> → <code>{{ t.candidate_model }}</code></td><td>{{ t.status }}</td>
      <td class="num">{{ t.sample_size|num }}</td><td class="num">{{ t.agreement|share }}</td>
      <td>{% if t.agreement_low is not none %}{{ t.agreement_low|share }} – {{ t.agreement_high|share }}{% else %}—{% endif %}</td>
      <td>{{ t.created_at|ts }}</td><td>{{ t.reported_at|ts }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% else %}
<p class="muted">No trial{% if workload %} of {{ workload }}{% endif %} yet: <code>nightshift trial --workload
  {{ workload or "W" }} --candidate MODEL</code> runs one.</p>
{% endif %}
{% endif %}
{% endblock %}
"""

TRIAL = """{% extends "base.html" %}
{% block title %}Trial #{{ t.trial_pk }} · {{ t.workload }}{% endblock %}
{% block main %}
<h1>Trial #{{ t.trial_pk }} · {{ t.workload }}: <code>{{ t.current_model }}</code> → <code>{{ t.candidate_model }}</code></h1>
<dl class="facts">
  <dt>workload</dt><dd><a href="{{ base }}/?workload={{ t.workload|urlencode }}">{{ t.workload }}</a> ·
    <a href="{{ base }}/trials?workload={{ t.workload|urlencode }}">its trials</a></dd>
  <dt>status</dt><dd>{{ t.status }}{% if t.message %} · {{ t.message }}{% endif %}</dd>
  <dt>run</dt><dd><a href="{{ base }}/runs/{{ t.run_pk }}">night #{{ t.run_pk }}</a> (the candidate's batch run)</dd>
  <dt>started</dt><dd>{{ t.created_at|ts }}</dd>
  <dt>reported</dt><dd>{{ t.reported_at|ts }}</dd>
  {% if report.get('sampling', {}).get('method') %}<dt>sample</dt><dd>{{ report.sampling.method }}</dd>{% endif %}
</dl>

<section class="gate" aria-labelledby="gate-h">
<h2 id="gate-h">The switch gate</h2>
{% if gate.clears is none %}
<p class="verdict verdict-none">{{ gate.reason }}</p>
{% elif gate.clears %}
<p class="verdict verdict-clears"><b>Clears</b> {{ gate.threshold|share(2) }} (migration.min_agreement): {{ gate.reason }}.
  <code>nightshift switch --workload {{ t.workload }} --model {{ t.candidate_model }}</code> would switch.</p>
{% else %}
<p class="verdict verdict-refused"><b>Refused</b> against {{ gate.threshold|share(2) if gate.threshold is not none else "the threshold" }}: {{ gate.reason }}.</p>
{% endif %}
{% for s in switches %}
<p class="switch">Switch #{{ s.switch_pk }} to <code>{{ s.model }}</code> rests on this trial ({{ s.changed_at|ts }}, by {{ s.changed_by }}).</p>
{% endfor %}
</section>

{% if t.status == "reported" %}
<div class="figures">
  <div class="figure"><b class="agreement">{{ t.agreement|share }}</b>agreement</div>
  <div class="figure"><b class="interval">{{ t.agreement_low|share }} – {{ t.agreement_high|share }}</b>95% interval (Wilson)</div>
  <div class="figure"><b>{{ t.keys_agreeing|num }} / {{ t.keys_compared|num }}</b>keys agreeing</div>
  <div class="figure"><b>{{ t.sample_size|num }}</b>sampled</div>
</div>

<h2>Agreement per field</h2>
<table class="fields" style="width:auto">
  <thead><tr><th>field</th><th class="num">agreeing</th><th class="num">agreement</th><th>95% interval</th><th>compared</th></tr></thead>
  <tbody>
  {% for name, f in (report.get('fields') or {}).items() %}
    <tr data-field="{{ name }}"><td>{{ name }}</td><td class="num">{{ f.agreeing|num }}</td><td class="num">{{ f.agreement|share }}</td>
      <td>{{ f.low|share }} – {{ f.high|share }}</td><td>{{ f.compared_by }}</td></tr>
  {% endfor %}
  </tbody>
</table>

{% for c in confusion %}
<h2>Confusion: {{ c.field }}</h2>
<table class="confusion" data-field="{{ c.field }}" style="width:auto">
  <thead><tr><th>current ↓ · candidate →</th>{% for a in c.answers %}<th class="num">{{ a }}</th>{% endfor %}<th class="num">keys</th></tr></thead>
  <tbody>
  {% for r in c.rows %}
    <tr data-label="{{ r.label }}"><th>{{ r.label }}</th>{% for cell in r.cells %}<td class="num{{ ' same' if cell.same }}">{{ cell.n if cell.n else "·" }}</td>{% endfor %}<td class="num">{{ r.total|num }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% endfor %}

{% set costs = report.get('costs') or {} %}
{% if costs %}
<h2>Cost per model</h2>
<table class="costs" style="width:auto">
  <thead><tr><th>model</th><th class="num">the sample cost</th><th class="num">at the batch rate</th><th class="num">projected monthly</th></tr></thead>
  <tbody>
    <tr data-model="{{ costs.current.model }}"><td><code>{{ costs.current.model }}</code> (current)</td>
      <td class="num">{{ costs.current.sample_usd|money }}</td><td class="num">{{ costs.current.sample_usd_at_batch_rate|money }}</td>
      <td class="num">{{ costs.projection.current_monthly_usd|money }}</td></tr>
    <tr data-model="{{ costs.candidate.model }}"><td><code>{{ costs.candidate.model }}</code> (candidate)</td>
      <td class="num">{{ costs.candidate.sample_usd|money }}</td><td class="num">{{ costs.candidate.sample_usd|money }}</td>
      <td class="num">{{ costs.projection.candidate_monthly_usd|money }}</td></tr>
  </tbody>
</table>
<p class="muted">From the API's usage. The projection: the workload's {{ costs.projection.requests|num }} requests of the
  last {{ costs.projection.days }} days, at each model's mean batch-rate cost per request in the sample.</p>
{% endif %}
{% endif %}
{% endblock %}
"""

TEMPLATES = {"base.html": BASE, "macros.html": MACROS, "index.html": INDEX, "run.html": RUN,
             "failures.html": FAILURES, "message.html": MESSAGE, "trials.html": TRIALS, "trial.html": TRIAL}
