"""Version tokens of runs and projects in Django's cache: what figures cached elsewhere (finished runs' pages,
:mod:`dashboard.runs.page_cache`; their realised plan figures, :mod:`planner.plans.measured`) are keyed on, so
that anything written about a run makes them stale.

A token is replaced (never incremented: an evicted token then only costs a recompute, it cannot bring an old
entry back) by receivers of what the writers announce after they commit. Telemetry's own announcements
(samples and events stored, late ones included; a run closed; units of work entered) are received here, so
every reader of a run's token sees them whichever apps are installed; apps above replace tokens for what they
write themselves (carbon figures, a project's offset policy).

A run's **samples stamp** (:func:`samples_stamp_sql`, :func:`samples_stamps`) is read from the database with
those figures, one definition for both readers: what its stored samples are now, for where the cache is not
the writer's and a token's replacement was not seen.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models.expressions import RawSQL
from django.dispatch import receiver

from dashboard.telemetry.models import Run, RunGpu
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


def samples_stamp_sql(run_id_sql: str = "%s") -> str:
    """What a run's stored samples are now (how many, the last one's time, their energy), as one SQL scalar
    subquery (text; NULL while it has none) of the run whose id is ``run_id_sql``: the statement's next
    parameter by default, or a column of the query it is part of. Any stored window adds samples and energy
    (a late one too) and may move the last sample."""
    table = RunGpu._meta.db_table
    return (f"(SELECT SUM(samples) || ':' || MAX(last_ms) || ':' || SUM(energy_j) FROM {table} "
            f"WHERE run_id = {run_id_sql})")


def samples_stamps(run_ids: Iterable[int]) -> dict[int, str | None]:
    """Each run's :func:`samples_stamp_sql`, in one statement (None: no samples; an id of no run is left
    out)."""
    ids = sorted({int(pk) for pk in run_ids})
    if not ids:
        return {}
    quote = connection.ops.quote_name
    stamp = RawSQL(samples_stamp_sql(f"{quote(Run._meta.db_table)}.{quote('id')}"), [])
    rows = Run.objects.filter(pk__in=ids).annotate(samples_stamp=stamp).values_list("pk", "samples_stamp")
    return dict(rows)


@receiver(samples_stored, dispatch_uid="telemetry.versions.samples_stored")
@receiver(run_closed, dispatch_uid="telemetry.versions.run_closed")
@receiver(run_changed, dispatch_uid="telemetry.versions.run_changed")
def run_written(sender: Any, run_id: int, **kwargs: Any) -> None:
    bump_runs([run_id])
