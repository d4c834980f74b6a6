"""Which runs a report is about: run ids or names from a command line, a URL or the API, looked up only in
the projects the caller may see (``Run.objects.for_user``; a command sees every project)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import QuerySet

from dashboard.telemetry.models import Run

MAX_RUNS = 200


class BadSelection(ValueError):
    """The runs asked for cannot be picked: says why."""


class RunNotFound(BadSelection):
    """A run asked for is not there, or not in the caller's projects (the same answer)."""


def pick_runs(runs: QuerySet[Run], wanted: Sequence[str], project: str | None = None) -> list[Run]:
    """``wanted`` are run ids or names, in the order given; every one must be found exactly once."""
    wanted = [w.strip() for w in wanted if w.strip()]
    if not wanted:
        raise BadSelection("name at least one run (its id or name)")
    if len(wanted) > MAX_RUNS:
        raise BadSelection(f"at most {MAX_RUNS} runs at once")
    runs = runs.select_related("project").prefetch_related("tags")
    if project:
        runs = runs.filter(project__name=project)
    found: list[Run] = []
    for key in dict.fromkeys(wanted):
        matches = list(runs.filter(pk=int(key))) if key.isascii() and key.isdigit() and len(key) < 19 else []
        matches = matches or list(runs.filter(name=key))
        if not matches:
            raise RunNotFound(f"no run {key!r}")
        if len(matches) > 1:
            projects = ", ".join(sorted(r.project.name for r in matches))
            raise BadSelection(f"several runs are named {key!r} (projects: {projects}); name the project")
        found.append(matches[0])
    return found
