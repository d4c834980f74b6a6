"""The agent's distribution: what ``pip install 'wattwise-agent[broker]'`` brings, and which copy tests import.

``make test-agent-pythons`` runs these (with the rest of tests/agents) in environments holding only the agent,
installed from a wheel, and pytest; the main suite runs them against its editable install.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.requirements import Requirement

import wattwise_agent

# What a training node must not be made to install: the server's frameworks and its heavy libraries.
SERVER_ONLY = {"django", "celery", "django-ninja", "psycopg", "psycopg-binary", "scipy", "plotly", "gunicorn",
               "whitenoise", "wattwise"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def required_distributions(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Every distribution ``name[extras]`` requires here, transitively (each one must be installed)."""
    found: set[str] = set()
    todo = [(name, extras)]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        dist, dist_extras = todo.pop()
        if (canonical(dist), dist_extras) in done:
            continue
        done.add((canonical(dist), dist_extras))
        found.add(canonical(dist))
        for text in metadata.requires(dist) or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in {"", *dist_extras}):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return found


def test_the_agent_with_its_broker_extra_brings_nothing_of_the_server() -> None:
    brought = required_distributions("wattwise-agent", frozenset({"broker"}))
    assert {"pydantic", "numpy", "nvidia-ml-py", "kombu", "redis"} <= brought
    assert brought & SERVER_ONLY == set()


def test_the_tests_import_the_agent_that_is_installed() -> None:
    dist = metadata.distribution("wattwise-agent")
    assert wattwise_agent.__version__ == dist.version
    imported = Path(wattwise_agent.__file__).resolve()
    origin = json.loads(dist.read_text("direct_url.json") or "{}")
    if origin.get("dir_info", {}).get("editable"):
        # The development environment: an editable install of agents/, which is then what is imported.
        source = Path(unquote(urlparse(origin["url"]).path))
        assert imported == (source / "wattwise_agent" / "__init__.py").resolve()
    else:
        # An installed wheel: the copy in site-packages, not the source tree these tests sit next to.
        assert imported == Path(str(dist.locate_file("wattwise_agent/__init__.py"))).resolve()
        assert Path(__file__).resolve().parents[2] / "agents" not in imported.parents
