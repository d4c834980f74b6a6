"""Finished runs' pages, computed once: their rendered figures kept in Django's cache (Redis in production).

A finished run's figures cannot change unless something they are drawn from does, so the run page's
body (cards, charts, tables, carbon section, units of work) and the live JSON are rendered once per state
of the run and kept under a key that names that state:

* a **version token** per run and per project, in the cache, replaced (never incremented: an evicted token
  then only costs a recompute, it cannot bring an old page back) by receivers of what the writers announce
  after they commit: samples stored (late ones included), a run closed, units of work entered, carbon figures
  stored or flagged stale, a project's offset policy or credit prices changed (:mod:`dashboard.runs.signals`);
* a **stamp** read from the database on every request, two small indexed queries: the run's device totals
  (devices, samples, first and last sample, energy) and its stored carbon row (id, when computed, stale). It
  keeps the page right where the cache is not shared with the process that wrote (the embedded default's
  in-process cache beside a separate ``stream_demo``), whatever a receiver missed;
* the run's own row as the view loaded it (name, project, status, end, tags), the range picked, the path
  and the chart settings.

Only finished runs are cached: a running or interrupted run is recomputed on every request, as before.
Access is checked by the caller before anything here runs, and what is cached holds nothing of the viewer:
the one per-viewer value in the body, the CSRF token of the units-of-work form, is a placeholder replaced
per request (:func:`with_csrf`). Reading never writes to the database; writing the cache is allowed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Min, Sum
from django.http import HttpRequest
from django.middleware.csrf import get_token

from dashboard.runs.ranges import RangeChoice
from dashboard.telemetry.models import Run, RunGpu
from planner.carbon.figures import carbon_stamp

log = logging.getLogger(__name__)

# Bump when what is cached changes shape (templates, figures), so a deploy never serves the old one.
LAYOUT = 1
# Where each viewer's CSRF token goes in a cached body: rendered in place of the token, replaced per request.
CSRF_PLACEHOLDER = "wattwise-csrf-placeholder-0c5e"


def enabled() -> bool:
    return bool(settings.WATTWISE_PAGE_CACHE)


def _token_key(kind: str, pk: int) -> str:
    return f"wattwise:version:{kind}:{pk}"


def bump_runs(run_ids: Iterable[int]) -> None:
    """Give these runs new version tokens: their cached pages are not read again. Never raises."""
    keys = {_token_key("run", int(pk)): secrets.token_hex(8) for pk in run_ids}
    if keys:
        _set_tokens(keys)


def bump_project(project_id: int) -> None:
    """A new version token for every run of the project (offsets, prices: what its pages quote)."""
    _set_tokens({_token_key("project", int(project_id)): secrets.token_hex(8)})


def _set_tokens(tokens: dict[str, str]) -> None:
    try:
        cache.set_many(tokens, timeout=None)
    except Exception:  # a writer must never fail for the cache; the stamp and the timeout still hold
        log.exception("could not replace page-cache version tokens %s", sorted(tokens))
        try:
            cache.delete_many(list(tokens))
        except Exception:
            log.exception("could not drop page-cache version tokens either")


def _tokens(run: Run) -> tuple[str, str]:
    run_key, project_key = _token_key("run", run.pk), _token_key("project", run.project_id)
    found = cache.get_many([run_key, project_key])
    missing = {k: secrets.token_hex(8) for k in (run_key, project_key) if k not in found}
    for key, token in missing.items():
        # add: a token a writer set meanwhile wins; read it back either way.
        if not cache.add(key, token, timeout=None):
            found[key] = cache.get(key, token)
        else:
            found[key] = token
    return str(found[run_key]), str(found[project_key])


def telemetry_stamp(run: Run) -> list[Any]:
    """What the run's stored samples add up to now: any stored window changes it."""
    totals = RunGpu.objects.filter(run=run).aggregate(
        devices=Count("id"), samples=Sum("samples"), first=Min("first_ms"), last=Max("last_ms"),
        energy=Sum("energy_j"), overlap=Sum("overlap_ms"),
    )
    return [totals[name] for name in ("devices", "samples", "first", "last", "energy", "overlap")]


def page_key(kind: str, run: Run, choice: RangeChoice, path: str) -> str:
    """The key of ``kind`` (a page or its JSON) of ``run`` for ``choice`` in its present state."""
    run_token, project_token = _tokens(run)
    state = [
        LAYOUT, kind, path, choice.key, choice.custom.from_ms if choice.custom else None,
        choice.custom.to_ms if choice.custom else None, run.name, run.project.name, run.status,
        run.ended_at.isoformat() if run.ended_at else None, run.simulated, sorted(t.name for t in run.tags.all()),
        run_token, project_token, telemetry_stamp(run), carbon_stamp(run),
        settings.WATTWISE_CHART_POINTS,
    ]
    digest = hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:32]
    return f"wattwise:page:{kind}:{run.pk}:{digest}"


def cached_text(kind: str, run: Run, choice: RangeChoice, path: str, build: Callable[[], str]) -> str:
    """``build()``'s text, from the cache when this finished run's state was rendered before.

    Live runs (running, interrupted) are always built afresh. The cache failing (Redis down) builds the
    page as if it were off, and logs it: a page never fails for its cache.
    """
    if not enabled() or run.status != Run.Status.FINISHED:
        return build()
    try:
        key = page_key(kind, run, choice, path)
        found = cache.get(key)
    except Exception:
        log.exception("page cache unreadable; run %s built afresh", run.pk)
        return build()
    if isinstance(found, str):
        return found
    text = build()
    try:
        cache.set(key, text, timeout=settings.WATTWISE_PAGE_CACHE_S)
    except Exception:
        log.exception("page cache unwritable; run %s not cached", run.pk)
    return text


def with_csrf(body: str, request: HttpRequest) -> str:
    """The body with this viewer's CSRF token where the placeholder stands."""
    return body.replace(CSRF_PLACEHOLDER, get_token(request)) if CSRF_PLACEHOLDER in body else body
