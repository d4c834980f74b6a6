"""Settings come from environment variables through typed readers that fail loudly on bad values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from dashboard.env import env_bool, env_float, env_int, env_list

ROOT = Path(__file__).resolve().parents[2]


def test_booleans_accept_the_usual_spellings(monkeypatch):
    for text, value in [("1", True), ("yes", True), ("ON", True), ("0", False), ("false", False), ("", False)]:
        monkeypatch.setenv("X_FLAG", text)
        assert env_bool("X_FLAG", not value) is value


def test_a_bad_boolean_names_the_variable(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG='maybe' is not a boolean"):
        env_bool("X_FLAG", False)


def test_integers_and_floats_are_checked(monkeypatch):
    monkeypatch.setenv("X_NUM", "12")
    assert env_int("X_NUM", 3) == 12
    monkeypatch.setenv("X_NUM", "twelve")
    with pytest.raises(ImproperlyConfigured, match="X_NUM='twelve' is not an integer"):
        env_int("X_NUM", 3)
    monkeypatch.setenv("X_NUM", "-1")
    with pytest.raises(ImproperlyConfigured, match="below the minimum"):
        env_int("X_NUM", 3, minimum=0)
    monkeypatch.setenv("X_NUM", "nan")
    with pytest.raises(ImproperlyConfigured):
        env_float("X_NUM", 1.0, minimum=0.0)


def test_lists_split_on_commas(monkeypatch):
    monkeypatch.setenv("X_HOSTS", "a.example, b.example,,")
    assert env_list("X_HOSTS", []) == ["a.example", "b.example"]


def settings_in_subprocess(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY")}
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env, "DJANGO_SETTINGS_MODULE": "dashboard.settings"},
                          capture_output=True, text=True, cwd=ROOT)


def test_with_nothing_set_the_app_needs_no_services():
    result = settings_in_subprocess({}, "settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER")
    assert result.returncode == 0, result.stderr
    assert "sqlite3" in result.stdout and "True" in result.stdout


def test_database_url_and_broker_switch_to_postgres_and_real_workers():
    result = settings_in_subprocess(
        {"DATABASE_URL": "postgres://u@db:5432/ww", "CELERY_BROKER_URL": "redis://r:6379/0"},
        "settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER",
    )
    assert result.returncode == 0, result.stderr
    assert "postgresql" in result.stdout and "False" in result.stdout


def test_the_carbon_recompute_interval_defaults_to_a_minute_and_refuses_negative_values():
    assert settings_in_subprocess({}, "settings.WATTWISE_CARBON_RECOMPUTE_S").stdout.strip() == "60.0"
    assert settings_in_subprocess({"WATTWISE_CARBON_RECOMPUTE_S": "15"},
                                  "settings.WATTWISE_CARBON_RECOMPUTE_S").stdout.strip() == "15.0"
    refused = settings_in_subprocess({"WATTWISE_CARBON_RECOMPUTE_S": "-1"}, "settings.WATTWISE_CARBON_RECOMPUTE_S")
    assert refused.returncode != 0 and "WATTWISE_CARBON_RECOMPUTE_S='-1' must be a number >= 0.0" in refused.stderr


def test_production_without_a_secret_key_refuses_to_start():
    result = settings_in_subprocess({"DEBUG": "0"}, "settings.SECRET_KEY")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_env_example_lists_every_variable_the_settings_read():
    import re

    read = set(re.findall(r'env_(?:str|bool|int|float|list)\("([A-Z_]+)"', (ROOT / "dashboard" / "settings.py").read_text()))
    listed = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read <= listed, f"missing from .env.example: {sorted(read - listed)}"


def test_the_ingest_queue_bound_defaults_to_ten_thousand_messages_and_must_be_positive():
    assert settings_in_subprocess({}, "settings.WATTWISE_INGEST_MAX_QUEUE").stdout.strip() == "10000"
    assert settings_in_subprocess({"WATTWISE_INGEST_MAX_QUEUE": "50"},
                                  "settings.WATTWISE_INGEST_MAX_QUEUE").stdout.strip() == "50"
    refused = settings_in_subprocess({"WATTWISE_INGEST_MAX_QUEUE": "0"}, "settings.WATTWISE_INGEST_MAX_QUEUE")
    assert refused.returncode != 0 and "WATTWISE_INGEST_MAX_QUEUE=0 is below the minimum 1" in refused.stderr


def test_the_proxys_https_header_is_believed_only_when_asked():
    assert settings_in_subprocess({}, "settings.SECURE_PROXY_SSL_HEADER").stdout.strip() == "None"
    behind = settings_in_subprocess({"BEHIND_TLS_PROXY": "1"}, "settings.SECURE_PROXY_SSL_HEADER")
    assert behind.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_the_page_cache_is_on_redis_with_cache_url_and_in_memory_without_services():
    expression = "settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1], settings.WATTWISE_PAGE_CACHE"
    assert settings_in_subprocess({}, expression).stdout.strip() == "LocMemCache True"
    redis = {"CACHE_URL": "redis://127.0.0.1:6379/1", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}
    assert settings_in_subprocess(redis, expression).stdout.strip() == "RedisCache True"
    # Separate workers whose signals cannot reach each process's own memory: off unless asked for.
    broker_only = {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}
    assert settings_in_subprocess(broker_only, expression).stdout.strip() == "LocMemCache False"
    assert settings_in_subprocess({**broker_only, "WATTWISE_PAGE_CACHE": "1"}, expression).stdout.strip() \
        == "LocMemCache True"
    assert settings_in_subprocess({"WATTWISE_PAGE_CACHE": "0"}, expression).stdout.strip() == "LocMemCache False"
    assert settings_in_subprocess({"WATTWISE_PAGE_CACHE": ""}, expression).stdout.strip() == "LocMemCache True"


def test_postgres_connections_give_up_connecting_after_ten_seconds_unless_told_otherwise():
    url = "postgres://postgres@127.0.0.1:5432/x"
    timeout = "settings.DATABASES['default']['OPTIONS']['connect_timeout']"
    assert settings_in_subprocess({"DATABASE_URL": url}, timeout).stdout.strip() == "10"
    assert settings_in_subprocess({"DATABASE_URL": url, "DATABASE_CONNECT_TIMEOUT_S": "3"}, timeout).stdout.strip() == "3"
    assert settings_in_subprocess({"DATABASE_URL": url + "?connect_timeout=5"}, timeout).stdout.strip() == "5"


def test_compaction_chunks_default_to_ten_minutes_an_hour_after_and_must_divide_an_hour():
    assert settings_in_subprocess({}, "settings.WATTWISE_COMPACT_CHUNK_S, settings.WATTWISE_COMPACT_AFTER_S"
                                  ).stdout.strip() == "600 3600"
    refused = settings_in_subprocess({"WATTWISE_COMPACT_CHUNK_S": "700"}, "settings.WATTWISE_COMPACT_CHUNK_S")
    assert refused.returncode != 0 and "WATTWISE_COMPACT_CHUNK_S must divide 3600 (an hour), not 700" in refused.stderr
