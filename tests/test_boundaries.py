"""The boundaries the design depends on: agents/ and planner/core import no Django or Celery, and
torch is imported lazily, only inside the functions that use it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE_PACKAGES = [ROOT / "agents", ROOT / "planner" / "perseus", ROOT / "planner" / "grid_carbon"]
FORBIDDEN = ("django", "celery")


def python_files() -> list[Path]:
    return sorted(p for package in PURE_PACKAGES for p in package.rglob("*.py"))


def imported_modules(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node))
    return found


def module_level_nodes(tree: ast.Module) -> set[int]:
    """ids of import nodes that run at import time (not inside a function body)."""
    top = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        top.add(id(node))
        stack.extend(ast.iter_child_nodes(node))
    return top


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_packages_import_no_django_or_celery_and_torch_only_lazily(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    top = module_level_nodes(tree)
    for module, node in imported_modules(tree):
        root = module.split(".")[0]
        assert root not in FORBIDDEN, f"{path.relative_to(ROOT)} imports {module}"
        if root == "torch":
            assert id(node) not in top, f"{path.relative_to(ROOT)} imports torch at module level"


def test_importing_every_pure_module_loads_no_django_celery_or_torch():
    script = (
        "import importlib, pkgutil, sys\n"
        "import agents, planner.perseus, planner.grid_carbon\n"
        "for pkg in (agents, planner.perseus, planner.grid_carbon):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not info.name.endswith('__main__'):\n"
        "            importlib.import_module(info.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'torch'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
