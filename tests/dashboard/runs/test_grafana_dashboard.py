"""The shipped Grafana dashboard (deploy/grafana) asks only for metrics the app's /metrics exports, in PromQL
that Prometheus' own promtool accepts, from the data source its provisioning defines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dashboard.runs.metrics import exposition
from dashboard.telemetry import ingest
from tests.conftest import need_service
from tests.factories import register, simple_batch
from wattwise_agent.wire import seal

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
METRIC_NAME = re.compile(r"\bwattwise_[a-z_]+\b")
# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$__range": "6h", "$project": ".*"}


def dashboard() -> dict:
    return json.loads((GRAFANA / "wattwise-dashboard.json").read_text())


def queries() -> list[str]:
    board = dashboard()
    found = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    found += [variable["definition"] for variable in board["templating"]["list"]]
    assert found
    return found


def promql(query: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    assert "$" not in query, query
    return query


@pytest.mark.django_db
def test_every_query_names_only_metrics_the_app_exports(admin_user):
    node = register("node-a", "vision")
    ingest.ingest_batch(simple_batch(node, run="llama"))
    ingest.ingest_batch(seal("batch", node.name, json.loads(simple_batch(node)["body"]), "guessed-token"))
    body, _ = exposition(admin_user)
    exported = {sample.name for family in text_string_to_metric_families(body.decode()) for sample in family.samples}
    assert len(exported) >= 10

    for query in queries():
        named = set(METRIC_NAME.findall(query))
        assert named, f"names no Wattwise metric: {query}"
        assert named <= exported, f"{query} names {sorted(named - exported)}, which /metrics does not export"


def test_every_query_is_promql_that_promtool_accepts(tmp_path):
    promtool = shutil.which("promtool")
    need_service("promtool (Debian's prometheus package; .ci/services installs it)", promtool is not None)
    assert promtool is not None
    expressions = [promql(q) for q in queries() if not q.startswith("label_values(")]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"wattwise:dashboard_query_{i}", "expr": expr} for i, expr in enumerate(expressions)
    ]}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_panel_reads_the_provisioned_data_source():
    [source] = yaml.safe_load((GRAFANA / "provisioning/datasources/wattwise.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    board = dashboard()
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert all(target["datasource"]["uid"] == source["uid"] for target in panel["targets"]), panel["title"]
    [provider] = yaml.safe_load((GRAFANA / "provisioning/dashboards/wattwise.yml").read_text())["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
