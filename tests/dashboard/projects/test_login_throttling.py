"""Sign-in throttling (django-axes, settings WATTWISE_LOGIN_*): after the failure limit, wrong and right
passwords alike get the lockout page (429) until the cool-off has passed; then the right one signs in."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.django_db


def sign_in(client: Client, password: str, address: str = "203.0.113.7"):
    return client.post(reverse("login"), {"username": "ana", "password": password}, REMOTE_ADDR=address)


def test_repeated_wrong_passwords_lock_the_sign_in_until_the_cooloff_has_passed(django_user_model):
    django_user_model.objects.create_user("ana", password="right-pw")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "wrong").status_code == 200  # the form again, with its error
    locked = sign_in(client, "wrong")
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "15 min" in locked.content.decode()  # the default cool-off, 900 s
    # Even the right password is refused while locked, and signs nobody in.
    assert sign_in(client, "right-pw").status_code == 429
    assert "_auth_user_id" not in client.session

    # The cool-off passes (the attempts' clock moved back rather than waiting 15 minutes).
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME
                                 - timedelta(seconds=1))
    signed_in = sign_in(client, "right-pw")
    assert signed_in.status_code == 302 and signed_in["Location"] == reverse("runs")


def test_a_lockout_from_one_address_does_not_lock_the_user_out_elsewhere(django_user_model):
    django_user_model.objects.create_user("ana", password="right-pw")
    attacker = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(attacker, "wrong")
    assert sign_in(attacker, "right-pw").status_code == 429
    assert sign_in(Client(), "right-pw", address="198.51.100.4").status_code == 302


def test_behind_a_tls_proxy_the_address_counted_is_the_one_the_proxy_added(django_user_model, settings):
    settings.AXES_CLIENT_IP_CALLABLE = "dashboard.web.security.forwarded_client_address"  # BEHIND_TLS_PROXY=1
    django_user_model.objects.create_user("ana", password="right-pw")
    attacker = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):  # a new address of its own choosing each time, in front
        attacker.post(reverse("login"), {"username": "ana", "password": "wrong"}, REMOTE_ADDR="10.0.0.2",
                      HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.7")
    locked = attacker.post(reverse("login"), {"username": "ana", "password": "right-pw"}, REMOTE_ADDR="10.0.0.2",
                           HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.7")
    assert locked.status_code == 429
    # Another client through the same proxy is someone else.
    assert Client().post(reverse("login"), {"username": "ana", "password": "right-pw"}, REMOTE_ADDR="10.0.0.2",
                         HTTP_X_FORWARDED_FOR="198.51.100.4").status_code == 302


def settings_value(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": "dashboard.settings"})


def test_the_limit_cooloff_and_what_is_counted_come_from_the_environment():
    result = settings_value(
        {"WATTWISE_LOGIN_FAILURE_LIMIT": "3", "WATTWISE_LOGIN_COOLOFF_S": "60", "WATTWISE_LOGIN_LOCKOUT_BY": "ip_address"},
        "settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds(), settings.AXES_LOCKOUT_PARAMETERS",
    )
    assert result.stdout.strip() == "3 60.0 [['ip_address']]", result.stderr
    refused = settings_value({"WATTWISE_LOGIN_LOCKOUT_BY": "email"}, "settings.AXES_LOCKOUT_PARAMETERS")
    assert refused.returncode != 0 and "WATTWISE_LOGIN_LOCKOUT_BY" in refused.stderr
