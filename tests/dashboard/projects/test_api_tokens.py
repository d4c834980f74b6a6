"""API tokens: issued once by a command, stored only as a hash, and checked on every request."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from dashboard.projects.models import ApiToken
from dashboard.projects.tokens import issue_token, user_for_bearer
from tests.factories import member

pytestmark = pytest.mark.django_db


def test_the_command_prints_a_token_that_authenticates_its_user():
    alice = member("alice", "vision")
    out = StringIO()
    call_command("create_api_token", "alice", "--name", "laptop", stdout=out, stderr=StringIO())
    token = out.getvalue().strip().splitlines()[-1]
    assert user_for_bearer(f"Bearer {token}") == alice
    assert ApiToken.objects.get().name == "laptop"


def test_only_the_hash_of_a_token_is_stored():
    alice = member("alice")
    token = issue_token(alice)
    stored = ApiToken.objects.get()
    assert stored.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {stored.token_sha256, stored.prefix, stored.name}
    assert token.startswith(stored.prefix)


def test_the_command_refuses_an_unknown_user_clearly():
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("create_api_token", "nobody", stdout=StringIO(), stderr=StringIO())


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Token ww_abc", "Bearer ww_a ww_b", "Bearer not-ours"],
)
def test_a_missing_or_malformed_header_authenticates_nobody(header):
    issue_token(member("alice"))
    assert user_for_bearer(header) is None


def test_an_unknown_token_authenticates_nobody():
    issue_token(member("alice"))
    assert user_for_bearer("Bearer ww_" + "x" * 43) is None


def test_an_inactive_users_token_stops_working():
    alice = member("alice")
    token = issue_token(alice)
    alice.is_active = False
    alice.save()
    assert user_for_bearer(f"Bearer {token}") is None


def test_last_used_is_recorded_at_most_once_a_minute():
    token = issue_token(member("alice"))
    user_for_bearer(f"Bearer {token}")
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    user_for_bearer(f"Bearer {token}")
    assert ApiToken.objects.get().last_used_at == first
    ApiToken.objects.update(last_used_at=first - timedelta(minutes=2))
    user_for_bearer(f"Bearer {token}")
    assert ApiToken.objects.get().last_used_at > first - timedelta(seconds=1)
    assert ApiToken.objects.get().last_used_at <= timezone.now()


# --- over HTTP ------------------------------------------------------------------------------------------


def test_a_token_from_the_command_reads_the_api(client, api_world):
    out = StringIO()
    call_command("create_api_token", "ana", stdout=out, stderr=StringIO())
    token = out.getvalue().strip().splitlines()[-1]
    response = client.get("/api/projects", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert [p["name"] for p in response.json()] == ["vision"]


def test_no_credentials_get_401_saying_how_to_authenticate(client, api_world):
    response = client.get("/api/runs")
    assert response.status_code == 401
    assert "create_api_token" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer ww_a ww_b", "ww_abc", "Bearer \x7f"])
def test_a_malformed_token_gets_401(client, api_world, header):
    response = client.get("/api/runs", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["detail"].startswith("malformed Authorization header")


def test_an_unknown_token_gets_401(client, api_world):
    response = client.get("/api/runs", headers={"Authorization": "Bearer ww_" + "x" * 43})
    assert response.status_code == 401
    assert response.json()["detail"] == "unknown or revoked API token"


def test_a_revoked_token_stops_working(client, api_world):
    assert api_world.api.get("/runs").status_code == 200
    ApiToken.objects.filter(user=api_world.ana).delete()
    assert api_world.api.get("/runs").status_code == 401


def test_a_signed_in_session_reads_the_api_without_a_token(client, api_world):
    client.force_login(api_world.ana)
    response = client.get("/api/runs")
    assert response.status_code == 200
    assert [run["name"] for run in response.json()["items"]] == ["llama-7b"]


def test_a_bad_token_is_refused_even_with_a_signed_in_session(client, api_world):
    # Falling back to the session would hide a broken token from the script that sent it.
    client.force_login(api_world.ana)
    response = client.get("/api/runs", headers={"Authorization": "Bearer ww_" + "x" * 43})
    assert response.status_code == 401
