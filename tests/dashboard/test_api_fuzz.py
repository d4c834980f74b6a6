"""Fuzz every API operation from its own OpenAPI schema (schemathesis), in-process through the WSGI app,
as a user whose project has a run with samples, a solved frontier and stored emissions.

Every response must conform to the schema, and none may be a server error. Rules the schema cannot
state (from ≤ to, a straggler no faster than all-max) answer 400 to schema-valid input, so the check
that such input is accepted is left out. Generated ids rarely name
a real object, so most cases have their ids swapped for the seeded objects' ids: the fuzzed query
parameters then run against real data, while the rest still probe the 404 paths.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from dashboard.projects.models import Project
from dashboard.projects.tokens import issue_token
from dashboard.telemetry.models import RunGpu
from dashboard.web.api_params import MAX_ID
from planner.carbon.accounting import store_run_carbon
from planner.carbon.models import RegionPreference
from planner.plans import planning, profiles
from tests.api_world import stream_run
from tests.factories import member
from tests.planner.plans.conftest import small_csv, solve_now

# Examples per operation, valid and invalid input mixed: about 20 s for all 28 operations on an idle machine.
MAX_EXAMPLES = 20


@pytest.fixture
def seeded(transactional_db, postgres, monkeypatch) -> dict[str, Any]:
    """Ana's project with a two-GPU run, a solved frontier and emissions; Bob's project beside it.

    The WSGI app closes connections at the end of each request the way a server does, which would
    break a test wrapped in a transaction: hence a transactional database. Frontiers the fuzzer asks
    for are queued but never solved (in-process, a fuzzed size could take minutes).
    """
    monkeypatch.setattr(planning, "_send", lambda job_id: None)
    ana = member("ana", "vision")
    member("bob", "speech")
    run = stream_run("node-a", "vision", "llama-7b", batches=4, gpus=2)
    stream_run("node-b", "speech", "whisper", batches=2)
    vision = Project.objects.get(name="vision")
    job = solve_now(profiles.store_upload(vision, small_csv(), name="small").profile)
    store_run_carbon(run)
    RegionPreference.objects.create(project=vision, allowed="SE-SE3 1.1\n", max_intensity_g_per_kwh=150.0)
    return {
        "token": issue_token(ana, name="fuzz"),
        "ids": {
            "project_id": vision.pk,
            "run_id": run.pk,
            "gpu_id": RunGpu.objects.filter(run=run).first().pk,  # type: ignore[union-attr]
            "profile_id": job.profile_id,
            "frontier_id": job.pk,
            "point": job.num_points - 1,
        },
    }


def with_real_ids(case: Any, ids: dict[str, int]) -> None:
    """Point most cases at the seeded objects (ids divisible by 7 stay, for the 404 paths); leave invalid
    (negative-test) ids alone."""
    for name, value in list((case.path_parameters or {}).items()):
        valid = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID
        if name in ids and valid and value % 7 != 0:
            case.path_parameters[name] = ids[name]


def fuzz(operation: Any, seeded: dict[str, Any]) -> None:
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    headers = {"Authorization": f"Bearer {seeded['token']}"}

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        with_real_ids(case, seeded["ids"])
        response = case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
        assert response.status_code < 500

    check()


def test_no_operation_answers_a_server_error_or_breaks_its_schema(seeded):
    # schemathesis' lazy pytest integration does not run under pytest 9; this drives hypothesis directly.
    loaded = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())
    # Authenticate every case with the seeded token; the 401 answers are covered in test_api_tokens.
    loaded.config.generation.update(with_security_parameters=False)
    failures, operations = [], 0
    for result in loaded.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            fuzz(operation, seeded)
        except (Exception, BaseExceptionGroup) as exc:  # report every failing operation, not only the first
            failures.append(f"{operation.label}: {exc}")
    assert operations == 28
    assert not failures, "\n\n".join(failures)
