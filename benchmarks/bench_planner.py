"""Benchmark: the Perseus planner against lowtime 0.3.0 on the same DAGs.

Run ``.venv/bin/python benchmarks/bench_planner.py`` (needs ``pip install lowtime==0.3.0``, the
``bench`` extra, for the comparison). For every case it solves the frontier twice — with
``planner.perseus`` in lowtime compatibility mode and with lowtime itself, driven exactly like
the Perseus artifact's ``lowtime/scripts/perseus.py`` — checks that the two frontiers are equal (same
number of points, same times, energies within 1e-6 relative) and prints both times and the ratio.

Times: "solver" is the Phillips–Dessouky run alone on the finished DAG (what lowtime's
``PhillipsDessouky.run()`` does); "total" adds reading the profile, cleaning options, fitting cost
models and building the DAG. The ratio is solver over solver.

Cases: ``gpt3-8x12``, ``gpt3-8x24``, ``gpt3-8x48`` (the artifact's GPT-3 175B A100 SXM profile,
τ = 1 ms, P_blocking = 83.64 W), ``synthetic-8x32`` (A100-like synthetic profile, seed 0, same τ and
P_blocking) and ``a40-8x96`` (A40-like synthetic profile, 8 stages × 96 microbatches, τ = 0.1 ms,
P_blocking = 70.38 W: the paper's largest emulation shape; ours only — lowtime needs hours).

Options: ``--quick`` (only gpt3-8x12), ``--cases a,b`` (``--cases=`` for none), ``--no-lowtime``,
``--random N`` (also compare N random small synthetic problems, including τ = 0.1 ms, against
lowtime), ``--json PATH``.
The last line is a one-line summary. ``--compare-modes`` prints, instead, the realised straggler
savings of the lowtime and default modes side by side (docs/planner.md).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import logging
import random
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from planner.perseus import Mode, PlanningProblem, parse_profile, solve_frontier  # noqa: E402
from planner.perseus.cost_model import clear_fit_cache  # noqa: E402
from planner.perseus.synthetic import synthetic_profile_csv  # noqa: E402

GPT3_PROFILE = ROOT / "tests" / "planner" / "perseus" / "fixtures" / "gpt3-175b+a100_sxm_bf16.csv"


@dataclass(frozen=True)
class Case:
    """One benchmark problem."""

    name: str
    profile_csv: str
    num_stages: int
    num_microbatches: int
    unit_time_s: float
    p_blocking_w: float
    with_lowtime: bool = True


def cases() -> dict[str, Case]:
    """All named cases."""
    gpt3 = GPT3_PROFILE.read_text()
    return {
        "gpt3-8x12": Case("gpt3-8x12", gpt3, 8, 12, 0.001, 83.64),
        "gpt3-8x24": Case("gpt3-8x24", gpt3, 8, 24, 0.001, 83.64),
        "gpt3-8x48": Case("gpt3-8x48", gpt3, 8, 48, 0.001, 83.64),
        "synthetic-8x32": Case("synthetic-8x32", synthetic_profile_csv(8, "a100", seed=0), 8, 32, 0.001, 83.64),
        "a40-8x96": Case(
            "a40-8x96", synthetic_profile_csv(8, "a40", seed=0), 8, 96, 0.0001, 70.38, with_lowtime=False
        ),
    }


@dataclass
class Run:
    """Result of one solve: quantised times, energies (J, blocking included) and timings."""

    quant_times: list[int]
    energies_j: list[float]
    solver_s: float
    total_s: float


def run_ours(case: Case) -> Run:
    """Solve with planner.perseus in lowtime compatibility mode (fit cache cleared first)."""
    clear_fit_cache()
    started = time.perf_counter()
    profile = parse_profile(case.profile_csv)
    problem = PlanningProblem(
        case.num_stages, case.num_microbatches, case.unit_time_s, case.p_blocking_w, mode=Mode.LOWTIME
    )
    frontier = solve_frontier(profile, problem)
    total = time.perf_counter() - started
    return Run(frontier.quant_times.tolist(), frontier.energy_j.tolist(), frontier.solve_time_s, total)


def run_lowtime(case: Case) -> Run:
    """Solve with lowtime 0.3.0, the way the Perseus artifact's ``lowtime/scripts/perseus.py`` does."""
    import networkx as nx
    from lowtime.cost_model import ExponentialModel
    from lowtime.graph_utils import DependencyResolver, add_sink_node, add_source_node
    from lowtime.operation import CandidateExecutionOptions, ExecutionOption, OperationSpec
    from lowtime.perseus.instruction import Backward, Forward, Instruction, backward_dep, forward_dep
    from lowtime.perseus.schedule import Synchronous1F1B
    from lowtime.solver import PhillipsDessouky

    started = time.perf_counter()
    rows = list(csv.DictReader(io.StringIO(case.profile_csv)))
    p = case.p_blocking_w
    spec: dict[int, dict[type, OperationSpec[int]]] = defaultdict(dict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for inst in (Forward, Backward):
            for stage in range(case.num_stages):
                options = [
                    ExecutionOption[int](
                        real_time=float(r["time"]),
                        unit_time=case.unit_time_s,
                        cost=float(r["energy"]),
                        knob=int(r["frequency"]),
                    )
                    for r in rows
                    if int(r["stage"]) == stage and r["instruction"] == inst.__name__.lower()
                ]
                cands = CandidateExecutionOptions[int](options=options)
                if len(cands.options) <= 3:
                    cands = CandidateExecutionOptions[int](options=options, noise_factor=0.95)
                for option in cands.options:
                    option.cost -= p * option.quant_time * option.unit_time
                model = ExponentialModel(cands, search_strategy="best")
                spec[stage][inst] = OperationSpec[int](options=cands, cost_model=model)

    dag = nx.DiGraph()
    node_id = 2
    for stage in range(case.num_stages):
        ids = []
        schedule = Synchronous1F1B(
            num_stages=case.num_stages,
            num_micro_batches=case.num_microbatches,
            stage_id=stage,
            operation_spec_map=spec[stage],
        )
        for instruction in schedule:
            dag.add_node(node_id, op=instruction)
            ids.append(node_id)
            node_id += 1
        for a, b in itertools.pairwise(ids):
            dag.add_edge(a, b)
    resolver = DependencyResolver(dependency_rules=[forward_dep, backward_dep], node_type=Instruction)
    nodes = dag.nodes(data=True)
    for (id1, d1), (id2, d2) in itertools.product(nodes, nodes):
        if resolver.is_dependent(d1["op"], d2["op"]):
            dag.add_edge(id1, id2)
    add_source_node(dag, 0)
    add_sink_node(dag, 1)
    dag.graph["source_node"] = 0
    dag.graph["sink_node"] = 1

    solver_started = time.perf_counter()
    quant_times: list[int] = []
    energies: list[float] = []
    for result in PhillipsDessouky(dag).run():
        quant_times.append(result.quant_time)
        energies.append(float(result.cost + case.num_stages * result.real_time * p))
    finished = time.perf_counter()
    return Run(quant_times, energies, finished - solver_started, finished - started)


def frontiers_equal(a: Run, b: Run) -> tuple[bool, float]:
    """Same number of points, same times, energies within 1e-6 relative; and the largest deviation."""
    if len(a.quant_times) != len(b.quant_times) or a.quant_times != b.quant_times:
        return False, float("inf")
    worst = max((abs(x - y) / abs(y) for x, y in zip(a.energies_j, b.energies_j, strict=True)), default=0.0)
    return worst <= 1e-6, worst


def random_case(seed: int) -> Case:
    """A small random synthetic problem (shapes, τ down to 0.1 ms, both GPU presets)."""
    rnd = random.Random(seed)
    stages = rnd.choice([2, 3, 4, 5, 8])
    microbatches = rnd.choice([1, 2, 3, 4, 6, 8])
    unit = rnd.choice([0.001, 0.0005, 0.0001]) if stages * microbatches <= 16 else 0.001
    preset = rnd.choice(["a100", "a40"])
    p = 83.64 if preset == "a100" else 70.38
    text = synthetic_profile_csv(stages, preset, seed=seed, noise=rnd.choice([0.0, 0.003, 0.01]))
    return Case(f"random-{seed}-{preset}-{stages}x{microbatches}-tau{unit:g}", text, stages, microbatches, unit, p)


def compare_modes(slowdowns: tuple[float, ...] = (1.02, 1.05, 1.1, 1.2, 1.5)) -> None:
    """Print realised straggler savings of the lowtime and default modes side by side.

    For T′ = s × the all-max iteration time: the energy saved against running everything at the
    maximum frequency (blocking to T′ included) by the best plan of each frontier whose *realised*
    time is at most T′.
    """
    from planner.perseus import choose_for_straggler, evaluate_all_max

    gpt3 = GPT3_PROFILE.read_text()
    synthetic = synthetic_profile_csv(8, "a100", seed=1)
    problems = [
        ("GPT-3 175B A100", gpt3, 12, 0.001),
        ("GPT-3 175B A100", gpt3, 24, 0.001),
        ("GPT-3 175B A100", gpt3, 12, 0.0002),
        ("synthetic A100", synthetic, 24, 0.001),
        ("synthetic A100", synthetic, 24, 0.0002),
    ]
    print(f"{'profile':<18} {'mb':>3} {'tau':>7}  " + "  ".join(f"s={s:<4} lowtime/default" for s in slowdowns))
    for name, text, microbatches, unit in problems:
        profile = parse_profile(text)
        frontiers = {
            mode: solve_frontier(profile, PlanningProblem(8, microbatches, unit, 83.64, mode=mode))
            for mode in (Mode.LOWTIME, Mode.DEFAULT)
        }
        base = evaluate_all_max(profile, frontiers[Mode.DEFAULT].dag, 83.64)
        cells = []
        for slowdown in slowdowns:
            pair = []
            for mode in (Mode.LOWTIME, Mode.DEFAULT):
                choice = choose_for_straggler(frontiers[mode], profile, base.time_s * slowdown)
                pair.append(f"{100 * choice.saving_fraction:5.2f}%" if choice.meets_time else "  n/a ")
            cells.append(f"{pair[0]} / {pair[1]}")
        print(f"{name:<18} {microbatches:>3} {unit:>7g}  " + "    ".join(cells), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0 when every compared frontier is equal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only gpt3-8x12")
    parser.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    parser.add_argument("--no-lowtime", action="store_true", help="time our planner only")
    parser.add_argument("--random", type=int, default=0, metavar="N", help="also compare N random problems")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument(
        "--compare-modes",
        action="store_true",
        help="instead of timing, print realised straggler savings of the lowtime and default modes",
    )
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    if args.compare_modes:
        compare_modes()
        return 0

    available = cases()
    if args.quick:
        names = ["gpt3-8x12"]
    elif args.cases is not None:  # "--cases=" selects no named case (e.g. with --random N)
        names = [n.strip() for n in args.cases.split(",") if n.strip()]
        unknown = [n for n in names if n not in available]
        if unknown:
            parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(available)}")
    else:
        names = list(available)
    selected = [available[n] for n in names] + [random_case(s) for s in range(args.random)]

    have_lowtime = not args.no_lowtime
    if have_lowtime:
        try:
            import lowtime.solver  # noqa: F401
        except ImportError:
            print("lowtime is not installed (pip install lowtime==0.3.0); timing our planner only")
            have_lowtime = False

    header = f"{'case':<34} {'points':>7} {'ours solver':>12} {'ours total':>11} {'lowtime solver':>15} {'lowtime total':>14} {'ratio':>8}  frontier equal"
    print(header)
    print("-" * len(header))
    results: list[dict[str, Any]] = []
    for case in selected:
        ours = run_ours(case)
        row: dict[str, Any] = {
            "case": case.name,
            "points": len(ours.quant_times),
            "ours_solver_s": ours.solver_s,
            "ours_total_s": ours.total_s,
        }
        if have_lowtime and case.with_lowtime:
            theirs = run_lowtime(case)
            equal, worst = frontiers_equal(ours, theirs)
            row.update(
                lowtime_points=len(theirs.quant_times),
                lowtime_solver_s=theirs.solver_s,
                lowtime_total_s=theirs.total_s,
                ratio=theirs.solver_s / ours.solver_s,
                total_ratio=theirs.total_s / ours.total_s,
                equal=equal,
                max_rel_energy_diff=worst,
            )
            print(
                f"{case.name:<34} {len(ours.quant_times):>7} {ours.solver_s:>11.2f}s {ours.total_s:>10.2f}s "
                f"{theirs.solver_s:>14.2f}s {theirs.total_s:>13.2f}s {row['ratio']:>7.1f}x  {'yes' if equal else 'NO'}"
                f" (max rel. energy diff {worst:.1e})",
                flush=True,
            )
        else:
            print(
                f"{case.name:<34} {len(ours.quant_times):>7} {ours.solver_s:>11.2f}s {ours.total_s:>10.2f}s "
                f"{'-':>15} {'-':>14} {'-':>8}  -",
                flush=True,
            )
        results.append(row)

    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    compared = [r for r in results if "ratio" in r]
    if compared:
        all_equal = all(r["equal"] for r in compared)
        slowest = min(compared, key=lambda r: r["ratio"])
        print(
            f"summary: {len(compared)} case(s) compared with lowtime 0.3.0, frontiers "
            f"{'all equal' if all_equal else 'NOT all equal'}; ours is {slowest['ratio']:.1f}x faster "
            f"at worst ({slowest['case']}), "
            f"{min(r['total_ratio'] for r in compared):.1f}x end to end"
        )
        return 0 if all_equal else 1
    total = sum(r["ours_solver_s"] for r in results)
    print(f"summary: {len(results)} case(s) solved by our planner in {total:.1f} s of solver time (no lowtime comparison)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
