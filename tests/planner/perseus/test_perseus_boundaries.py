"""planner stays a pure library: no Django, no Celery, no torch; of the agent only its 1F1B order (standard
library only, shared with the nodes' training loops)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_planner_core_and_cli_import_no_django_celery_or_torch() -> None:
    code = (
        "import sys\n"
        "import planner.perseus, planner.perseus.cli\n"
        "from planner.perseus import evaluate, straggler, synthetic, plans\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'celery', 'torch'})\n"
        "print(','.join(bad))\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'wattwise_agent')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    bad, agent = result.stdout.split("\n")[:2]
    assert bad == ""
    assert set(agent.split(",")) <= {"wattwise_agent", "wattwise_agent.pipeline_order"}


def test_perseus_sources_do_not_mention_forbidden_imports() -> None:
    for path in (ROOT / "planner" / "perseus").glob("*.py"):
        text = path.read_text()
        for name in ("django", "celery", "torch"):
            assert f"import {name}" not in text and f"from {name}" not in text, (path.name, name)
