"""The carbon library stands alone: no Django or Celery, and nothing reads ../shared at run time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "planner" / "grid_carbon"
TESTS = Path(__file__).resolve().parent


def test_importing_the_carbon_library_loads_no_django_or_celery() -> None:
    script = (
        "import sys, planner.grid_carbon, planner.grid_carbon.importers, planner.grid_carbon.providers\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)


def test_neither_code_nor_tests_point_at_the_shared_folder() -> None:
    offenders = []
    for path in [*PACKAGE.rglob("*.py"), *TESTS.rglob("*.py")]:
        if path == Path(__file__).resolve():
            continue
        text = path.read_text()
        if "../shared" in text or "/work/shared" in text or "shared/data" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
