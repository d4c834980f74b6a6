"""What the import contracts cannot say about the agent and the pure libraries.

Which package may import which (no Django in the libraries or the agent, the apps' layers) is checked
by import-linter: the contracts in pyproject.toml's ``[tool.importlinter]``, run by ``make lint``. Two
things remain for these tests: torch and the training frameworks (transformers, Lightning) are imported
lazily, only inside the functions that use them (a node without them, or a planner host, must still import
everything), and importing every pure module really loads none of them, nor Django or Celery, whatever path
the import takes.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE_PACKAGES = ("wattwise_agent", "planner.perseus", "planner.grid_carbon")
PURE_MODULES = ("planner.units",)
# Imported only inside functions: the agent's integrations build their callback classes on first use.
LAZY_LIBRARIES = ("torch", "transformers", "lightning", "pytorch_lightning")


def package_directory(package: str) -> Path:
    # The agent is a distribution of its own, in agents/ (agents/pyproject.toml).
    return ROOT / "agents" / package if package == "wattwise_agent" else ROOT.joinpath(*package.split("."))


def python_files() -> list[Path]:
    paths = [package_directory(package) for package in PURE_PACKAGES]
    paths_of_modules = [ROOT.joinpath(*module.split(".")).with_suffix(".py") for module in PURE_MODULES]
    return sorted([p for package in paths for p in package.rglob("*.py")] + paths_of_modules)


def module_level_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """(module, line) of every absolute import that runs at import time, not inside a function body."""
    found = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
        stack.extend(ast.iter_child_nodes(node))
    return found


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_torch_and_the_training_frameworks_are_imported_only_inside_functions(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    at_import_time = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for module, line in module_level_imports(tree)
        if module.split(".")[0] in LAZY_LIBRARIES
    ]
    assert at_import_time == []


def test_importing_every_pure_module_loads_no_django_celery_torch_or_training_framework():
    script = (
        "import importlib, pkgutil, sys\n"
        f"packages = [importlib.import_module(name) for name in {PURE_PACKAGES!r}]\n"
        f"for name in {PURE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "for pkg in packages:\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not info.name.endswith('__main__'):\n"
        "            importlib.import_module(info.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {('django', 'celery', 'ninja', *LAZY_LIBRARIES)!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_telemetry_consumer_starts_without_the_planners_solver_libraries():
    """Every server process loads the apps, and the plans' models load ``planner.perseus``; scipy is imported
    only where a cost model is fitted (``cost_model._fit_exponential``): at module level it was a third of a
    consumer's start-up (docs/benchmarks.md)."""
    script = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'dashboard.settings')\n"
        "import django\n"
        "django.setup()\n"
        "from django.core.management import load_command_class\n"
        "load_command_class('dashboard.telemetry', 'consume_telemetry')\n"
        "import dashboard.celery\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'pandas', 'torch'})))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
