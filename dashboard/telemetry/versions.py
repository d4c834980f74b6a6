"""Version tokens of runs and projects in Django's cache: what figures cached elsewhere (finished runs' pages,
:mod:`dashboard.runs.page_cache`; their realised plan figures, :mod:`planner.plans.measured`) are keyed on, so
that anything written about a run makes them stale.

A token is replaced (never incremented: an evicted token then only costs a recompute, it cannot bring an old
entry back) by receivers of what the writers announce after they commit. Telemetry's own announcements
(samples and events stored, late ones included; a run closed; units of work entered) are received here, so
every reader of a run's token sees them whichever apps are installed; apps above replace tokens for what they
write themselves (carbon figures, a project's offset policy).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import Any

from django.core.cache import cache
from django.dispatch import receiver

from dashboard.telemetry.signals import run_changed, run_closed, samples_stored

log = logging.getLogger(__name__)


def token_key(kind: str, pk: int) -> str:
    """The cache key of the version token of a ``run`` or ``project``."""
    return f"wattwise:version:{kind}:{pk}"


def bump_runs(run_ids: Iterable[int]) -> None:
    """Give these runs new version tokens: what was cached of them is not read again. Never raises."""
    keys = {token_key("run", int(pk)): secrets.token_hex(8) for pk in run_ids}
    if keys:
        _set_tokens(keys)


def bump_project(project_id: int) -> None:
    """A new version token for the project (offsets, prices: what its runs' pages quote)."""
    _set_tokens({token_key("project", int(project_id)): secrets.token_hex(8)})


def _set_tokens(tokens: dict[str, str]) -> None:
    try:
        cache.set_many(tokens, timeout=None)
    except Exception:  # a writer must never fail for the cache; stamps and timeouts still hold
        log.exception("could not replace version tokens %s", sorted(tokens))
        try:
            cache.delete_many(list(tokens))
        except Exception:
            log.exception("could not drop version tokens either")


def tokens_now(keys: Iterable[str], found: dict[str, Any]) -> list[str]:
    """The tokens under ``keys``, from what ``cache.get_many`` found; one that is missing (never set, or
    evicted) is created, so an entry cached before it went missing never matches it again. May raise (the
    cache down): callers compute afresh."""
    tokens = []
    for key in keys:
        token = found.get(key)
        if token is None:
            token = secrets.token_hex(8)
            if not cache.add(key, token, timeout=None):  # a writer set one meanwhile: it wins
                token = cache.get(key, token)
        tokens.append(str(token))
    return tokens


@receiver(samples_stored, dispatch_uid="telemetry.versions.samples_stored")
@receiver(run_closed, dispatch_uid="telemetry.versions.run_closed")
@receiver(run_changed, dispatch_uid="telemetry.versions.run_changed")
def run_written(sender: Any, run_id: int, **kwargs: Any) -> None:
    bump_runs([run_id])
