"""Compare runs: names resolve safely, totals and differences against a baseline are exact, the series are
aligned at each run's start and read in the database, and the page stays a bounded number of queries."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard.runs import compare, compare_series
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run, RunGpu, RunTag
from dashboard.telemetry.windows import TimeRange
from planner.carbon.accounting import store_run_carbon
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, member, register

pytestmark = pytest.mark.django_db

HOUR_MS = 3_600_000


def stream_run(
    node, run: str, *, gpus: int = 2, start_ms: int = T0_MS, seconds: int = 600, period_ms: int = 1000,
    window_ms: int = 5000, power_w: float | list[float] = 300.0, step_every_ms: int | None = None,
    first_step: int = 0, stream: str = "s1",
) -> float:
    """Stream a run through the real ingest path: every GPU draws ``power_w`` (one per GPU, or the same for
    all), sampled every ``period_ms`` in windows of ``window_ms``, with a step marker every ``step_every_ms``.

    Returns the energy the run should total, in joules (the first reading of each GPU counts nothing).
    """
    powers = power_w if isinstance(power_w, list) else [power_w] * gpus
    samples = seconds * 1000 // period_ms
    per_window = window_ms // period_ms
    step, next_step_ms = first_step, start_ms + (step_every_ms or 0)
    for seq, first in enumerate(range(0, samples, per_window)):
        index = np.arange(first, min(first + per_window, samples))
        t_ms = [int(start_ms + i * period_ms) for i in index]
        entries = []
        for g, power in enumerate(powers):
            mj = int(power * period_ms)
            energy = [int(1_000_000 + i * mj) for i in index]
            prev = (t_ms[0] - period_ms, energy[0] - mj) if seq else None
            entries.append(gpu_entry(f"{run}-GPU-{g}", t_ms, energy, index=g, prev=prev,
                                     power_mw=[int(power * 1000)] * len(t_ms)))
        events = []
        while step_every_ms and next_step_ms <= t_ms[-1]:
            if next_step_ms >= t_ms[0]:
                events.append({"t_ms": next_step_ms, "kind": "step_end", "step": step})
            step, next_step_ms = step + 1, next_step_ms + step_every_ms
        outcome = ingest.ingest_batch(envelope(node, batch_payload(entries, run=run, seq=seq, stream=stream,
                                                                    events=events)))
        assert outcome.status == "stored", outcome.detail
    return sum(powers) * (samples - 1) * period_ms / 1000.0


def figures_in(html: str) -> dict[str, dict]:
    found = re.findall(r'<script type="application/json" data-(?:lazy-)?plot="([\w-]+)">(.*?)</script>', html, re.S)
    return {div: json.loads(text) for div, text in found}


def values(array: Any) -> np.ndarray:
    """Plotly writes numpy arrays as base64 typed arrays in figure JSON."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=np.float64)


def url(runs: str, **params: str) -> str:
    query = "&".join([f"runs={runs}"] + [f"{k}={v}" for k, v in params.items()])
    return reverse("compare") + "?" + query


@pytest.fixture
def ana(client):
    user = member("ana", "vision", "speech")
    client.force_login(user)
    return user


@pytest.fixture
def three_runs(ana):
    """Three short runs in ``vision``: slow-and-frugal, fast-and-hungry, and one beaten on both."""
    node = register("node-a", "vision")
    stream_run(node, "frugal", seconds=600, power_w=200.0, stream="s1")
    stream_run(node, "hungry", seconds=300, power_w=500.0, stream="s2")
    stream_run(node, "beaten", seconds=700, power_w=400.0, stream="s3")
    return node


# --- names ------------------------------------------------------------------------------------------------


def test_bare_names_resolve_when_unambiguous_and_keep_the_links_order(client, three_runs):
    response = client.get(url("hungry,frugal"))
    assert response.status_code == 200
    assert [t.run.name for t in response.context["totals"]] == ["hungry", "frugal"]


def test_a_name_used_in_two_projects_is_ambiguous_until_qualified(client, three_runs):
    stream_run(register("node-b", "speech"), "frugal", seconds=60)
    response = client.get(url("frugal,hungry"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "names more than one of your runs (speech/frugal, vision/frugal)" in html
    assert "PROJECT/NAME" in html
    response = client.get(url("speech/frugal,vision/frugal"))
    assert response.status_code == 200
    assert [t.run.project.name for t in response.context["totals"]] == ["speech", "vision"]
    # Shared links use the shortest names that still resolve: the clashing ones stay qualified.
    assert response.context["canonical"] == "runs=speech/frugal,vision/frugal"


def test_qualified_names_are_shortened_in_the_shared_link_when_unambiguous(client, three_runs):
    response = client.get(url("vision/frugal,vision/hungry", baseline="vision/hungry", diff="1", x="time"))
    assert response.status_code == 200
    assert response.context["canonical"] == "runs=frugal,hungry&baseline=hungry&diff=1"
    assert 'value="http://testserver/compare/?runs=frugal,hungry&amp;baseline=hungry&amp;diff=1"' in (
        response.content.decode())


def test_unknown_names_get_a_400_naming_them(client, three_runs):
    response = client.get(url("frugal,nope,also-missing"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "No run &#x27;nope&#x27; in your projects." in html
    assert "No run &#x27;also-missing&#x27; in your projects." in html


def test_another_projects_run_looks_exactly_like_an_unknown_name(client, three_runs):
    stream_run(register("node-x", "secret"), "classified", seconds=60, power_w=999.0)
    def page(entry: str) -> str:
        html = client.get(url(f"frugal,{entry}")).content.decode()
        return re.sub(r'name="csrfmiddlewaretoken" value="\w+"', "", html).replace(entry, "X")

    assert page("classified") == page("does-not-exist")
    for entry in ("classified", "secret/classified"):
        response = client.get(url(f"frugal,{entry}"))
        assert response.status_code == 400
        assert "999" not in response.content.decode() and "secret/" not in response.content.decode().replace(
            f"&#x27;{entry}&#x27;", "")


def test_names_no_run_could_have_are_unknown_not_errors(client, three_runs):
    for entry in ("x" * 5000, "nul%00byte", "<script>alert(1)</script>"):
        response = client.get(url(f"frugal,{entry}"))
        assert response.status_code == 400 and "in your projects." in response.content.decode()
        assert "<script>alert" not in response.content.decode()


def test_fewer_than_two_or_more_than_ten_runs_are_refused(client, three_runs):
    one = client.get(url("frugal"))
    assert one.status_code == 400 and "at least 2 runs; this link names 1" in one.content.decode()
    none = client.get(reverse("compare"))
    assert none.status_code == 400 and "Pick 2 to 10 runs" in none.content.decode()
    many = client.get(url(",".join(f"run-{i}" for i in range(11))))
    assert many.status_code == 400 and "at most 10 runs; this link names 11" in many.content.decode()


def test_duplicates_are_refused_however_they_are_spelled(client, three_runs):
    twice = client.get(url("frugal,hungry,frugal"))
    assert twice.status_code == 400 and "&#x27;frugal&#x27; is listed twice." in twice.content.decode()
    spelled = client.get(url("frugal,vision/frugal"))
    assert spelled.status_code == 400
    assert "&#x27;vision/frugal&#x27; is the same run as &#x27;frugal&#x27;." in spelled.content.decode()


def test_a_baseline_outside_the_compared_runs_or_a_bad_axis_is_a_400(client, three_runs):
    response = client.get(url("frugal,hungry", baseline="beaten"))
    assert response.status_code == 400
    assert "The baseline &#x27;beaten&#x27; is not one of the compared runs." in response.content.decode()
    assert client.get(url("frugal,hungry", x="energy")).status_code == 400


def test_the_plain_form_of_the_runs_list_repeats_the_parameter(client, three_runs):
    response = client.get(reverse("compare"), {"runs": ["vision/frugal", "vision/hungry"]})
    assert response.status_code == 200
    assert response.context["canonical"] == "runs=frugal,hungry"


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(url("a,b"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# --- totals, differences, Pareto -------------------------------------------------------------------------


def test_totals_match_the_stored_run_totals_and_differences_are_against_the_baseline(client, three_runs):
    response = client.get(url("frugal,hungry,beaten", baseline="hungry"))
    assert response.status_code == 200
    totals = {t.run.name: t for t in response.context["totals"]}
    for name, t in totals.items():
        stored = RunGpu.objects.filter(run__name=name)
        assert t.energy_j == sum(rg.energy_j for rg in stored)
        assert t.gpus == 2 and t.nodes == 1
    # 2 GPUs × 200 W × 599 s, 2 × 500 W × 299 s, 2 × 400 W × 699 s.
    assert totals["frugal"].energy_j == 239_600.0
    assert totals["hungry"].energy_j == 299_000.0
    assert totals["beaten"].energy_j == 559_200.0
    assert totals["frugal"].duration_s == 599.0
    assert totals["frugal"].mean_power_w == pytest.approx(400.0)
    rows = {row.key: row for row in response.context["rows"]}
    energy = rows["energy"].cells
    assert energy[1].baseline and energy[1].delta is None
    assert energy[0].delta == pytest.approx((239_600.0 - 299_000.0) / 3.6e6)
    assert energy[0].pct == pytest.approx((239_600.0 - 299_000.0) / 299_000.0 * 100)
    assert energy[0].verdict == "better" and energy[0].delta_text.startswith("−")
    assert energy[2].verdict == "worse" and energy[2].delta_text.startswith("+")
    assert "(−19.9 %)" in energy[0].delta_text
    duration = rows["duration"].cells
    assert duration[0].delta == 300.0 and duration[0].verdict == "worse"
    assert duration[0].delta_text == "+5 min 00 s (+100.3 %)"
    # Mean power is not judged: drawing more power is how a run gets faster.
    assert rows["mean_power"].cells[0].verdict == ""


def test_differences_only_hides_the_rows_that_are_the_same_for_every_run(client, three_runs):
    response = client.get(url("frugal,hungry", diff="1"))
    rows = {row.key: row for row in response.context["rows"]}
    assert rows["project"].identical and rows["gpus"].identical and rows["nodes"].identical
    assert not rows["energy"].identical and not rows["duration"].identical
    html = response.content.decode()
    assert 'class="runs compare diff-only"' in html
    assert '<tr data-row="project" class="identical">' in html
    assert '<tr data-row="energy">' in html


def test_the_descriptive_rows_show_tags_and_where_runs_ran(client, three_runs):
    RunTag.objects.create(run=Run.objects.get(name="frugal"), name="nightly")
    rows = {row.key: row for row in client.get(url("frugal,hungry")).context["rows"]}
    assert [c.text for c in rows["tags"].cells] == ["nightly", "—"]
    assert [c.text for c in rows["gpu_model"].cells] == ["Test GPU", "Test GPU"]
    assert not rows["tags"].identical


def test_pareto_marks_the_runs_no_other_run_beats_on_both(client, three_runs):
    response = client.get(url("frugal,hungry,beaten"))
    assert response.context["pareto"] == ["frugal", "hungry"]
    html = response.content.decode()
    assert re.search(r"Pareto-optimal</strong>.*: frugal, hungry\.", html, re.S)
    scatter = figures_in(html)["chart-scatter"]
    symbols = {t["name"]: t["marker"]["symbol"] for t in scatter["data"] if t.get("mode") == "markers"}
    assert symbols == {"frugal": "star", "hungry": "star", "beaten": "circle-open"}


def test_pareto_ties_and_strict_domination():
    assert compare.pareto_optimal([(1, 1), (1, 1), (2, 2)]) == [True, True, False]
    assert compare.pareto_optimal([(1, 2), (1, 1)]) == [False, True]
    assert compare.pareto_optimal([(1, 3), (2, 2), (3, 1)]) == [True, True, True]


def test_emissions_and_offset_cost_appear_once_carbon_figures_exist(client, three_runs):
    store_run_carbon(Run.objects.get(name="frugal"))
    rows = {row.key: row for row in client.get(url("frugal,hungry")).context["rows"]}
    frugal, hungry = rows["emissions"].cells
    assert frugal.value is not None and frugal.value > 0 and frugal.text.endswith(" g CO₂e")
    assert hungry.text == "—" and hungry.delta is None
    assert rows["offset_cost"].cells[0].text.endswith("USD")
    store_run_carbon(Run.objects.get(name="hungry"))
    rows = {row.key: row for row in client.get(url("frugal,hungry")).context["rows"]}
    frugal, hungry = rows["emissions"].cells
    assert hungry.delta == pytest.approx(hungry.value - frugal.value) and hungry.verdict == "worse"
    # Offsetting a few grams costs a fraction of a cent: said so, not rounded to "0.00".
    assert re.fullmatch(r"\+(< )?[\d.]+ USD \(\+[\d.]+ %\)", rows["offset_cost"].cells[1].delta_text)


def test_carbon_figures_that_are_not_current_show_as_a_dash_with_the_reason(client, three_runs):
    from planner.carbon.models import RunCarbon

    store_run_carbon(Run.objects.get(name="frugal"))
    RunCarbon.objects.update(stale=True)  # a site or contract changed; the recompute is queued
    response = client.get(url("frugal,hungry"))
    frugal, hungry = {row.key: row for row in response.context["rows"]}["emissions"].cells
    assert frugal.text == hungry.text == "—"
    assert response.context["carbon_notes"] == [("frugal", "will be recomputed (an input changed)"),
                                                 ("hungry", "being computed")]
    assert RunCarbon.objects.get().stale  # the page read them; it recomputed nothing


# --- series -----------------------------------------------------------------------------------------------


def test_cumulative_energy_starts_at_zero_and_ends_at_each_runs_total(client, three_runs):
    html = client.get(url("frugal,hungry,beaten")).content.decode()
    figures = figures_in(html)
    energy = {t["name"].removesuffix(" (baseline)"): t for t in figures["chart-energy"]["data"]}
    for name, trace in energy.items():
        x, y = values(trace["x"]), values(trace["y"])
        total = sum(RunGpu.objects.filter(run__name=name).values_list("energy_j", flat=True))
        assert x[0] == 0 and y[0] == 0
        assert y[-1] * 3.6e6 == pytest.approx(total, rel=1e-12)
        assert np.all(np.diff(y) >= 0)
    power = {t["name"].removesuffix(" (baseline)"): values(t["y"]) for t in figures["chart-power"]["data"]}
    # Steady draw: every bucket's power is the two GPUs' 2 × 200 W (counter-based: energy ÷ time).
    assert np.nanmedian(power["frugal"]) == pytest.approx(400.0)


def test_short_runs_read_windows_and_long_runs_read_minute_rollups_within_the_point_budget(ana):
    node = register("node-a", "vision")
    total = stream_run(node, "day", gpus=3, seconds=26 * 3600, period_ms=60_000, window_ms=3_600_000,
                       power_w=[100.0, 200.0, 300.0])
    run = Run.objects.get(name="day")
    first = min(RunGpu.objects.filter(run=run).values_list("first_ms", flat=True))
    last = max(RunGpu.objects.filter(run=run).values_list("last_ms", flat=True))
    plan = compare_series.plan_for([last - first])
    assert plan.source == "minutes" and plan.bucket_ms % 60_000 == 0
    [series] = compare_series.read_series([compare_series.RunReadings(run.pk, TimeRange(first, last))], plan)
    assert series.buckets <= compare_series.POINTS + 1
    assert series.elapsed_s[0] == 0 and series.elapsed_s[-1] == (last - first) / 1000
    assert series.cumulative_j[-1] == pytest.approx(total, rel=1e-12)
    assert np.nanmedian(series.power_w) == pytest.approx(600.0)
    short = compare_series.plan_for([HOUR_MS])
    assert short.source == "windows" and short.bucket_ms == compare_series.MIN_WINDOW_BUCKET_MS


def test_windows_longer_than_a_bucket_are_spread_over_it_and_energy_is_kept(ana):
    node = register("node-a", "vision")
    total = stream_run(node, "long-windows", gpus=1, seconds=1800, period_ms=1000, window_ms=60_000, power_w=250.0)
    run = Run.objects.get(name="long-windows")
    rg = RunGpu.objects.get(run=run)
    plan = compare_series.Plan("windows", 5_000)
    [series] = compare_series.read_series([compare_series.RunReadings(run.pk, TimeRange(rg.first_ms, rg.last_ms))],
                                          plan)
    assert series.cumulative_j[-1] == pytest.approx(total, rel=1e-9)
    # The window gaps (one sample period) aside, every 5 s bucket shows the steady 250 W.
    assert np.nanmedian(series.power_w) == pytest.approx(250.0, rel=1e-6)
    assert np.isnan(series.power_w).sum() == 0


def test_runs_are_aligned_at_their_own_start(client, ana):
    node = register("node-a", "vision")
    stream_run(node, "early", seconds=300, power_w=300.0, stream="s1")
    stream_run(node, "late", seconds=300, power_w=300.0, stream="s2", start_ms=T0_MS + 5 * HOUR_MS)
    figures = figures_in(client.get(url("early,late")).content.decode())
    early, late = (values(t["x"]) for t in figures["chart-energy"]["data"])
    assert early[0] == late[0] == 0
    assert early[-1] == pytest.approx(late[-1])


def test_the_step_axis_needs_steps_in_every_run(client, ana):
    node = register("node-a", "vision")
    stream_run(node, "stepped", seconds=300, power_w=300.0, step_every_ms=2_000, stream="s1")
    stream_run(node, "unstepped", seconds=300, power_w=300.0, stream="s2")
    response = client.get(url("stepped,unstepped", x="step"))
    assert response.status_code == 200
    assert response.context["x"] == "time"
    assert "none in unstepped" in response.context["step_reason"]
    html = response.content.decode()
    assert re.search(r'title="Steps need step markers[^"]*"><input type="radio" name="x" value="step"\s+disabled', html)
    rows = {row.key: row for row in response.context["rows"]}
    # A marker every 2 s from 2 s in, while samples run to 299 s: 149 steps.
    assert rows["steps"].cells[0].text == "149" and rows["j_per_step"].cells[1].text == "—"
    assert "chart-power-step" not in figures_in(html)


def test_steps_give_energy_per_step_and_a_step_axis(client, ana):
    node = register("node-a", "vision")
    total_a = stream_run(node, "a", seconds=300, power_w=300.0, step_every_ms=2_000, stream="s1")
    stream_run(node, "b", seconds=300, power_w=300.0, step_every_ms=1_000, first_step=1000, stream="s2")
    response = client.get(url("a,b", x="step"))
    assert response.context["x"] == "step"
    totals = {t.run.name: t for t in response.context["totals"]}
    assert totals["a"].steps == 149 and totals["b"].steps == 299
    assert totals["a"].j_per_step == pytest.approx(total_a / 149)
    figures = figures_in(response.content.decode())
    trace = figures["chart-energy-step"]["data"][0]
    x, y = values(trace["x"]), values(trace["y"])
    assert x[0] == 0 and x[-1] == 149 and np.all(np.diff(x) > 0)
    # Energy at a step is what was spent by the time it ended: the last one ends at 298 s, at 2 × 300 W.
    assert y[-1] * 3.6e6 == pytest.approx(298 * 600.0, rel=0.01)
    html = response.content.decode()
    assert '<section class="charts" data-x="time" hidden>' in html
    assert 'data-lazy-plot="chart-power"' in html and 'data-plot="chart-power-step"' in html


# --- the page ---------------------------------------------------------------------------------------------


def test_the_page_renders_three_runs_with_table_and_charts(client, three_runs):
    response = client.get(url("frugal,hungry,beaten"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="compare-table"' in html and "/static/runs/compare.js" in html
    figures = figures_in(html)
    assert {"chart-power", "chart-energy", "chart-scatter"} <= set(figures)
    assert [t["name"] for t in figures["chart-power"]["data"]] == ["frugal (baseline)", "hungry", "beaten"]
    assert figures["chart-power"]["layout"]["hovermode"] == "x unified"
    assert figures["chart-power"]["layout"]["yaxis"]["title"]["text"] == "Power (W)"
    assert figures["chart-energy"]["layout"]["xaxis"]["title"]["text"].endswith("(min)")
    # The figures are built unvalidated (for speed): every property must still be one Plotly knows.
    for figure in figures.values():
        go.Figure(figure)


def test_a_run_without_samples_is_listed_but_not_drawn(client, three_runs):
    Run.objects.create(project=Run.objects.get(name="frugal").project, name="empty")
    response = client.get(url("frugal,empty"))
    assert response.status_code == 200
    assert response.context["unsampled"] == ["empty"]
    assert "No samples yet, so not drawn: empty." in response.content.decode()


def test_the_runs_list_has_tick_boxes_and_a_compare_button(client, three_runs):
    html = client.get(reverse("runs")).content.decode()
    assert '<form id="compare-form" method="get" action="/compare/">' in html
    assert html.count('type="checkbox" name="runs"') == 3
    assert 'value="vision/frugal"' in html and 'id="compare-button"' in html


def test_the_number_of_queries_is_bounded_and_does_not_grow_with_gpus(client, ana):
    counts = []
    for gpus, project in ((1, "vision"), (8, "speech")):
        node = register(f"node-{project}", project)
        for i in range(3):
            stream_run(node, f"{project}-{i}", gpus=gpus, seconds=60, step_every_ms=1_000, stream=f"s{i}")
        store_run_carbon(Run.objects.get(name=f"{project}-0"))
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url(f"{project}-0,{project}-1,{project}-2", x="step")).status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1] <= 31  # 31: one of them reads the raw retention's horizon (RawHorizon)


# --- the queries ------------------------------------------------------------------------------------------


def _plan_text(sql: str, *, index_scans: bool = True) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL enable_indexscan = {'on' if index_scans else 'off'}")
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(r[0] for r in cursor.fetchall())
        cursor.execute("SET LOCAL enable_indexscan = on")
        return plan


def test_the_series_queries_read_index_ranges_and_probes_never_a_whole_table(postgres, ana):
    node = register("node-a", "vision")
    stream_run(node, "indexed", seconds=60, step_every_ms=1_000)
    run = Run.objects.get(name="indexed")
    with connection.cursor() as cursor:  # statistics, and no cheap way round the indexes on tiny tables
        cursor.execute("ANALYZE")
        cursor.execute("SET LOCAL enable_seqscan = off")
    with CaptureQueriesContext(connection) as captured:
        for plan in (compare_series.Plan("minutes", 60_000), compare_series.Plan("windows", 5_000)):
            compare_series.read_series([compare_series.RunReadings(run.pk, TimeRange(T0_MS, T0_MS + 59_000))], plan)
    reads = [q["sql"] for q in captured.captured_queries if q["sql"].startswith(("SELECT", "WITH"))]
    buckets = [sql for sql in reads if "dashboard_gpuminute" in sql or "dashboard_samplewindow" in sql]
    others = [sql for sql in reads if sql not in buckets and "set_config" not in sql]
    # The sample tables are read as bitmap scans of an index range on the run's GPUs (see _bitmap_scans).
    bucket_plans = [_plan_text(sql, index_scans=False) for sql in buckets]
    assert len(bucket_plans) == 2
    for text in bucket_plans:
        assert "Bitmap Index Scan" in text and "Index Cond: (run_gpu_id = ANY" in text, text
    marker_plans = "\n".join(_plan_text(sql) for sql in others)
    assert "Scan Backward using event_run_kind_time" in marker_plans, marker_plans
    assert "Seq Scan" not in "\n".join(bucket_plans) + marker_plans
    assert "Hash Join" not in marker_plans
    with connection.cursor() as cursor:  # the planner setting is put back
        cursor.execute("SELECT current_setting('enable_indexscan')")
        assert cursor.fetchone()[0] == "on"


# --- in a browser -----------------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_tick_runs_compare_them_and_switch_views_in_a_browser(live_server):
    from tests.e2e.browser import browser_page, log_in

    node = register("node-a", "vision")
    for i, (name, power) in enumerate((("frugal", 200.0), ("hungry", 500.0), ("beaten", 400.0))):
        stream_run(node, name, seconds=300, power_w=power, step_every_ms=2_000, stream=f"s{i}")
    member("ana", "vision")
    with browser_page() as page:
        log_in(page, live_server.url, "ana", "pw-ana")
        button = page.locator("#compare-button")
        assert button.is_disabled()
        page.check('input[value="vision/frugal"]')
        assert button.is_disabled() and "tick one more" in page.inner_text("#compare-count")
        page.check('input[value="vision/hungry"]')
        assert button.is_enabled()
        button.click()
        page.wait_for_selector("#chart-scatter .main-svg")
        # The address is the shareable one (bare names where they are unambiguous), in the list's order.
        assert page.url == live_server.url + "/compare/?runs=hungry,frugal"
        assert page.locator(".js-plotly-plot").count() == 3
        assert page.evaluate("document.getElementById('chart-power').data.length") == 2
        shots = Path(os.environ.get("WATTWISE_SCREENSHOTS", "/tmp/wattwise-screenshots"))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "compare.png"), full_page=True)

        assert page.is_visible('tr[data-row="project"]')
        page.check("#diff-only")
        assert not page.is_visible('tr[data-row="project"]') and page.is_visible('tr[data-row="energy"]')
        assert page.url.endswith("?runs=hungry,frugal&diff=1")

        page.check('input[name="x"][value="step"]')
        page.wait_for_selector("#chart-energy-step .main-svg")
        assert not page.is_visible("#chart-energy") and page.url.endswith("&diff=1&x=step")
        assert page.input_value("#share-link").endswith("/compare/?runs=hungry,frugal&diff=1&x=step")

        page.select_option("#baseline", "frugal")
        page.wait_for_url("**baseline=frugal**")
        page.wait_for_selector("#chart-energy-step .main-svg")
        assert page.url.endswith("?runs=hungry,frugal&baseline=frugal&diff=1&x=step")
        assert "baseline" in page.inner_text('th[data-run="frugal"]')
        page.screenshot(path=str(shots / "compare-steps.png"), full_page=True)
        assert page.console_errors == []
