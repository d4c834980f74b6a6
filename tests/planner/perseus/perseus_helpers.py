"""Shared helpers for the Perseus planner tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from planner.perseus.dag import PipelineDag as PipelineDagLike

FIXTURES = Path(__file__).parent / "fixtures"
GPT3_PROFILE = FIXTURES / "gpt3-175b+a100_sxm_bf16.csv"


def expected_frontier(microbatches: int) -> list[tuple[float, float]]:
    """The artifact's reference frontier for 8 stages × ``microbatches``."""
    path = FIXTURES / f"gpt3-175b+a100_sxm_bf16.frontier_mb{microbatches}.csv"
    rows = path.read_text().strip().splitlines()[1:]
    return [(float(t), float(e)) for t, e in (r.split(",") for r in rows)]


def longest_path(dag: PipelineDagLike, durations: Sequence[float]) -> float:
    """Length of the DAG's longest path with ``durations`` per computation (source/sink take 0)."""
    n = dag.num_computations
    finish = [0.0] * dag.num_nodes
    for v in dag.topo_order:
        start = max((finish[p] for p in dag.preds[v]), default=0.0)
        finish[v] = start + (durations[v] if v < n else 0.0)
    return finish[dag.sink]
