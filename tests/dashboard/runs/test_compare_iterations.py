"""Compare a planned run with its baseline run: iteration time and energy per iteration from the plan client's
markers, and the saving the planned run realised against the run its plan names, beside the predicted one."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.factories import member, register
from tests.planner.plans.loop_runs import iteration_events, plan_fields, store_run

pytestmark = pytest.mark.django_db

BASELINE = ([[3.0, 2.0] + [1.0] * 4, [3.0, 2.0] + [0.99] * 4], [[500.0, 400.0] + [120.0] * 4, [500.0, 400.0] + [80.0] * 4])
PLANNED = ([[3.0, 2.0] + [1.004] * 4, [3.0, 2.0] + [1.0] * 4], [[500.0, 400.0] + [100.0] * 4, [500.0, 400.0] + [66.0] * 4])
PLAN = plan_fields(1, 2, predicted_time_s=1.0, predicted_energy_j=170.0, baseline_time_s=0.99, baseline_energy_j=200.0)


def table_row(html: str, key: str) -> list[str]:
    found = re.search(rf'<tr data-row="{key}".*?</tr>', html, re.S)
    assert found, f"no {key} row"
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", found.group(0), re.S)]


@pytest.fixture
def runs(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = member("ana", "vision")
    node = register("loop-node", "vision")
    store_run(node, "loop-baseline", iteration_events(*BASELINE))
    store_run(node, "loop-planned", iteration_events(*PLANNED, plans={(0, 0): PLAN, (1, 0): PLAN}))
    return user


def test_the_compare_page_shows_iteration_figures_and_the_realised_and_predicted_saving(client, runs):
    client.force_login(runs)
    html = client.get(reverse("compare"), {"runs": "loop-baseline,loop-planned"}).content.decode()
    assert table_row(html, "iteration_time") == ["1.00 s", "1.00 s +4.00 ms (+0.4 %) · worse"]
    assert table_row(html, "iteration_energy") == ["200 J", "166 J −34.0 J (−17.0 %) · better"]
    assert table_row(html, "realised_saving") == ["—", "17.0 % against loop-baseline"]
    assert table_row(html, "predicted_saving") == ["—", "15.0 % against all-max clocks"]


def test_runs_without_iteration_markers_get_no_iteration_rows(client, runs):
    node = register("other-node", "vision")
    from dashboard.telemetry import ingest
    from tests.factories import simple_batch
    for name in ("plain-a", "plain-b"):
        assert ingest.ingest_batch(simple_batch(node, run=name, uuid=f"GPU-{name}", stream=name)).status == "stored"
    client.force_login(runs)
    html = client.get(reverse("compare"), {"runs": "plain-a,plain-b"}).content.decode()
    assert 'data-row="iteration_time"' not in html and 'data-row="realised_saving"' not in html


def test_a_baseline_run_not_compared_leaves_the_saving_rows_out(client, runs):
    node = register("other-node", "vision")
    store_run(node, "loop-other", iteration_events(*BASELINE))
    client.force_login(runs)
    html = client.get(reverse("compare"), {"runs": "loop-other,loop-planned"}).content.decode()
    assert table_row(html, "iteration_energy")[0] == "200 J"
    assert 'data-row="realised_saving"' not in html
