"""The run page shows the power-limit optimiser's chosen limit and its measured saving, from the
``power_limit`` markers the agent's optimiser sends (wattwise_agent.power_limit)."""

from __future__ import annotations

import re

import pytest

from tests.factories import T0_MS, member, register
from tests.planner.plans.loop_runs import store_run

pytestmark = pytest.mark.django_db


def trial(t_ms: int, limit_w: int, dry_run: int = 0) -> dict:
    return {"t_ms": t_ms, "kind": "power_limit", "phase": "trial", "limit_w": limit_w, "dry_run": dry_run}


def chosen(t_ms: int, dry_run: int = 0, limit_w: int = 250) -> dict:
    # As PowerLimitChoice.event_fields() sends it.
    return {"t_ms": t_ms, "kind": "power_limit", "phase": "chosen", "limit_w": limit_w, "max_limit_w": 300,
            "eta": 0.5, "energy_saving_pct": 12.345, "time_change_pct": 1.5, "dry_run": dry_run}


def text(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">(.*?</div>\s*)</div>', html, re.S)
    assert found, element_id
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


@pytest.fixture
def user(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return member("ana", "vision")


def test_the_run_page_shows_the_chosen_limit_and_its_measured_saving(client, user):
    events = [trial(T0_MS + 100 * i, w) for i, w in enumerate((300, 275, 250, 225))] + [chosen(T0_MS + 1000)]
    run = store_run(register("dp-node", "vision"), "dp-run", events)
    client.force_login(user)
    html = client.get(run.get_absolute_url()).content.decode()
    assert 'id="power-limit"' in html
    assert text(html, "card-power-limit") == "Chosen power limit 250 W of 300 W (the highest) · η 0.5"
    assert text(html, "card-power-limit-saving") == "Energy per step 12.3 % less measured against 300 W"
    assert text(html, "card-power-limit-time") == "Step time +1.5 % against 300 W"
    note = re.sub(r"\s+", " ", html[html.index('id="power-limit-note"'):].split("</p>")[0])
    assert "tried 300 W, 275 W, 250 W, 225 W" in note and "Dry run" not in note


def test_a_dry_run_says_no_limit_was_set(client, user):
    run = store_run(register("dp-node", "vision"), "dp-dry", [trial(T0_MS, 300, 1), chosen(T0_MS + 100, dry_run=1)])
    client.force_login(user)
    html = client.get(run.get_absolute_url()).content.decode()
    assert "<b>Dry run:</b> it set no limit" in html


def test_ranks_that_chose_differently_are_each_shown(client, user):
    a, b = register("dp-a", "vision"), register("dp-b", "vision")
    run = store_run(a, "dp-split", [chosen(T0_MS, limit_w=250)])
    store_run(b, "dp-split", [chosen(T0_MS, limit_w=225)])
    client.force_login(user)
    html = client.get(run.get_absolute_url()).content.decode()
    assert 'id="power-limit-disagree"' in html and "250 W (dp-a)" in html and "225 W (dp-b)" in html


def test_a_run_without_the_optimiser_has_no_power_limit_section(client, user):
    run = store_run(register("dp-node", "vision"), "plain", [{"t_ms": T0_MS, "kind": "step_end", "step": 1}])
    client.force_login(user)
    assert 'id="power-limit"' not in client.get(run.get_absolute_url()).content.decode()
