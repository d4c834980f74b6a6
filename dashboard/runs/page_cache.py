"""Finished runs' pages, computed once: their rendered figures kept in Django's cache (Redis in production).

A finished run's figures cannot change unless something they are drawn from does, so the run page's
body (cards, charts, tables, carbon section, units of work) and its GPU pages' bodies are rendered once per
state of the run and kept under a key that names that state:

* a **version token** per run and per project, in the cache (:mod:`dashboard.telemetry.versions`), replaced
  (never incremented: an evicted token then only costs a recompute, it cannot bring an old page back) by
  receivers of what the writers announce after they commit: samples stored (late ones included), a run
  closed, units of work entered (telemetry's receivers), carbon figures stored or flagged stale, a project's
  offset policy or credit prices changed (:mod:`dashboard.runs.signals`);
* a **stamp** read from the database on every request, one statement of two indexed lookups (:func:`stamp`):
  its devices' totals (samples, last sample, energy: :func:`dashboard.telemetry.versions.samples_stamp_sql`,
  as the realised plan figures' key reads them) and its stored carbon row (id, when computed, stale). It
  keeps the page right where the cache is not shared with the process that wrote (the embedded default's
  in-process cache beside a separate ``stream_demo``), whatever a receiver missed;
* the run's own row (name, project, status, end), the range picked, the path and the chart settings.

Only finished runs are cached: a running or interrupted run is recomputed on every request, as before.
Access is checked by the caller before anything here runs, and what is cached holds nothing of the viewer:
the one per-viewer value in the body, the CSRF token of the units-of-work form, is a placeholder replaced
per request (:func:`with_csrf`). Reading never writes to the database; writing the cache is allowed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models.expressions import RawSQL
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404

from dashboard.runs.ranges import RangeChoice
from dashboard.telemetry import versions
from dashboard.telemetry.models import RawHorizon, Run
from planner.carbon.figures import carbon_stamp_sql

log = logging.getLogger(__name__)

# Bump when what is cached changes shape (templates, figures), so a deploy never serves the old one.
LAYOUT = 1
# Where each viewer's CSRF token goes in a cached body: rendered in place of the token, replaced per request.
CSRF_PLACEHOLDER = "wattwise-csrf-placeholder-0c5e"


def enabled() -> bool:
    return bool(settings.WATTWISE_PAGE_CACHE)


def _token_keys(run: Run) -> list[str]:
    return [versions.token_key("run", run.pk), versions.token_key("project", run.project_id)]


def _stamp_sql() -> str:
    horizon = RawHorizon._meta.db_table
    # The raw retention's horizon too: when it passes a run's samples, its pages say they expired.
    return (f"COALESCE({versions.samples_stamp_sql()}, '-') || '/' || COALESCE({carbon_stamp_sql()}, '-') || "
            f"'/' || COALESCE((SELECT CAST(MAX(windows_before_ms) AS TEXT) FROM {horizon}), '-')")


def visible_run(user: Any, pk: int) -> Run:
    """The run if ``user`` may see it (the access rule: ``Run.objects.for_user``), else 404, with its project
    and, in the same statement, its stamp (:func:`stamp`)."""
    runs = Run.objects.for_user(user).select_related("project")
    return get_object_or_404(runs.annotate(page_stamp=RawSQL(_stamp_sql(), [int(pk), int(pk)])), pk=pk)


def stamp(run: Run) -> str:
    """What the run's stored samples, carbon figures and the raw retention's horizon are now, in one statement: any stored window adds
    samples and energy (late ones too) and may move the last sample; a recompute stores a new carbon row, a
    stale flag changes the old one."""
    found = getattr(run, "page_stamp", None)
    if found is not None:
        return str(found)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_stamp_sql()}", [run.pk, run.pk])
        return str(cursor.fetchone()[0])


def page_key(kind: str, run: Run, choice: RangeChoice, path: str) -> str:
    """The key of ``kind`` (a page or its JSON) of ``run`` for ``choice`` in its present state (less the
    version tokens, which are stored with the page and compared on reading: one round trip to the cache).

    Tags are not in it: a run's tags change only when it is opened again, which makes it running.
    """
    state = [
        LAYOUT, kind, path, choice.key, choice.custom.from_ms if choice.custom else None,
        choice.custom.to_ms if choice.custom else None, run.name, run.project.name, run.status,
        run.ended_at.isoformat() if run.ended_at else None, run.simulated, stamp(run),
        settings.WATTWISE_CHART_POINTS,
    ]
    digest = hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:32]
    return f"wattwise:page:{kind}:{run.pk}:{digest}"


def cached_text(kind: str, run: Run, choice: RangeChoice, path: str, build: Callable[[], tuple[str, bool]]) -> str:
    """The text ``build()`` returns, from the cache when this finished run's state was rendered before.

    ``build`` returns the text and whether it may be kept (not when part of it could not be read: a passing
    error must not stay on the page). Live runs (running, interrupted) are always built afresh. The cache
    failing (Redis down) builds the page as if it were off, and logs it: a page never fails for its cache.
    """
    if not enabled() or run.status != Run.Status.FINISHED:
        return build()[0]
    try:
        key = page_key(kind, run, choice, path)
        found = cache.get_many([key, *_token_keys(run)])
        tokens = versions.tokens_now(_token_keys(run), found)
    except Exception:
        log.exception("page cache unreadable; run %s built afresh", run.pk)
        return build()[0]
    entry = found.get(key)
    if isinstance(entry, dict) and entry.get("tokens") == tokens and isinstance(entry.get("text"), str):
        return entry["text"]
    text, keep = build()
    if not keep:
        return text
    try:
        cache.set(key, {"tokens": tokens, "text": text}, timeout=settings.WATTWISE_PAGE_CACHE_S)
    except Exception:
        log.exception("page cache unwritable; run %s not cached", run.pk)
    return text


def with_csrf(body: str, request: HttpRequest) -> str:
    """The body with this viewer's CSRF token where the placeholder stands."""
    return body.replace(CSRF_PLACEHOLDER, get_token(request)) if CSRF_PLACEHOLDER in body else body
