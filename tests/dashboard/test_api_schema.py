"""The API describes itself: an OpenAPI document at /api/openapi.json and a docs page at /api/docs that
works offline (every script and stylesheet served by the app itself)."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db

OPERATIONS = [
    "/api/projects", "/api/projects/{project_id}", "/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/gpus",
    "/api/runs/{run_id}/gpus/{gpu_id}", "/api/runs/{run_id}/gpus/{gpu_id}/samples",
    "/api/runs/{run_id}/gpus/{gpu_id}/samples/buckets", "/api/runs/{run_id}/carbon",
    "/api/projects/{project_id}/carbon", "/api/projects/{project_id}/carbon/offsets",
    "/api/projects/{project_id}/carbon/preferences", "/api/carbon/datasets", "/api/carbon/intensity",
    "/api/carbon/imports", "/api/carbon/imports/jobs/{job_id}", "/api/planner/profiles", "/api/planner/profiles/{profile_id}",
    "/api/planner/profiles/{profile_id}/frontiers", "/api/planner/frontiers",
    "/api/planner/frontiers/{frontier_id}", "/api/planner/frontiers/{frontier_id}/points",
    "/api/planner/frontiers/{frontier_id}/choice", "/api/planner/frontiers/{frontier_id}/plans/{point}",
    "/api/planner/frontiers/{frontier_id}/runs",
    "/api/model-card", "/api/projects/{project_id}/report",
]


def test_the_openapi_document_lists_every_operation_with_its_errors(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    schema = response.json()
    assert schema["openapi"].startswith("3.") and schema["info"]["title"] == "Wattwise API"
    assert sorted(schema["paths"]) == sorted(OPERATIONS)
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            assert operation["summary"], path
            answers = set(operation["responses"])
            assert {"400", "401", "404"} <= answers and answers & {"200", "202"}, (method, path)
            assert {next(iter(s)) for s in operation["security"]} == {"BearerToken", "SignedInSession"}, path
    assert schema["components"]["securitySchemes"]["BearerToken"] == {"type": "http", "scheme": "bearer"}


def test_operation_ids_are_the_handlers_names(client):
    schema = client.get("/api/openapi.json").json()
    ids = [operation["operationId"] for methods in schema["paths"].values() for operation in methods.values()]
    assert len(set(ids)) == len(ids) and "get_samples" in ids and "get_plan" in ids


def test_the_docs_page_loads_nothing_from_outside_the_app(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html), "an external script or stylesheet"
    assert "cdn" not in html.lower()
    assert '"validatorUrl": null' in html  # swagger.io's validator badge would call out
    assets = re.findall(r"""(?:src|href)="/static/([^"]+)\"""", html)
    assert "ninja/swagger-ui-bundle.js" in assets
    for asset in assets:
        assert finders.find(asset), f"{asset} is not served by the app"
