"""Command line for the Perseus planner: ``python -m planner``.

Works without Django: it only imports :mod:`planner.perseus`.

``frontier``
    Solve the iteration time–energy frontier and write ``time,energy`` rows (seconds, joules per
    iteration including blocking, slowest first) to ``--out``, and the frontier with every plan
    beside it (``<out>.plans.npz``, readable with ``Frontier.from_bytes``).

``plan``
    Choose the plan for a straggler's iteration time (``--straggler-time``; without it, the
    fastest plan), print its summary and write its per-rank JSON.

Bad input (a malformed profile, impossible parameters, a problem too large) prints one clear
line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from planner.perseus import (
    Frontier,
    Mode,
    PlannerError,
    PlanningProblem,
    Schedule,
    choose_for_straggler,
    load_profile,
    plan_at,
    realised_frontier,
    solve_frontier,
)
from planner.perseus.profile import Profile

EXIT_BAD_INPUT = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text}")
    return value


def _add_problem_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("profile", type=Path, help="Perseus profile CSV (stage,instruction,frequency,time,energy)")
    p.add_argument("--stages", type=_positive_int, required=True, help="number of pipeline stages")
    p.add_argument("--microbatches", type=_positive_int, required=True, help="microbatches per iteration")
    p.add_argument("--unit-time", type=_positive_float, required=True, metavar="SECONDS", help="time unit τ, e.g. 0.001")
    p.add_argument("--p-blocking", type=_non_negative_float, required=True, metavar="WATTS", help="GPU power while blocking")
    p.add_argument("--schedule", choices=[s.value for s in Schedule], default=Schedule.ONE_F_ONE_B.value)
    p.add_argument(
        "--compat",
        choices=["lowtime"],
        default=None,
        help="reproduce lowtime 0.3.0 / the Perseus artifact exactly instead of the default mode",
    )
    p.add_argument("--progress", action="store_true", help="show a progress bar on stderr")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(prog="python -m planner", description="Perseus GPU frequency planner.")
    sub = parser.add_subparsers(dest="command", required=True)

    f = sub.add_parser("frontier", help="solve the iteration time-energy frontier")
    _add_problem_arguments(f)
    f.add_argument("--out", type=Path, required=True, help="CSV to write (time,energy)")
    f.add_argument("--plans", type=Path, default=None, help="where to write the plans (default: <out>.plans.npz)")
    f.add_argument(
        "--realised",
        action="store_true",
        help="also write <out>.realised.csv with each plan's re-evaluated time and energy",
    )

    pl = sub.add_parser("plan", help="choose and write the plan for a straggler time")
    _add_problem_arguments(pl)
    pl.add_argument("--straggler-time", type=_positive_float, default=None, metavar="SECONDS")
    pl.add_argument("--frontier", type=Path, default=None, help="reuse a .plans.npz written by 'frontier'")
    pl.add_argument("--basis", choices=["realised", "planned"], default="realised")
    pl.add_argument("--out", type=Path, default=Path("plan.json"), help="per-rank JSON to write (default plan.json)")
    pl.add_argument("--csv", type=Path, default=None, help="also write the plan as CSV")
    return parser


def _problem(args: argparse.Namespace) -> PlanningProblem:
    return PlanningProblem(
        num_stages=args.stages,
        num_microbatches=args.microbatches,
        unit_time_s=args.unit_time,
        p_blocking_w=args.p_blocking,
        schedule=Schedule(args.schedule),
        mode=Mode.LOWTIME if args.compat == "lowtime" else Mode.DEFAULT,
    )


def _progress_bar(enabled: bool) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=1, unit="pt", desc="frontier", file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = min(done, total)
        bar.refresh()

    return update, bar.close


def _solve(args: argparse.Namespace, profile: Profile) -> Frontier:
    update, close = _progress_bar(args.progress)
    try:
        return solve_frontier(profile, _problem(args), progress=update)
    finally:
        close()


def _write(path: Path, text: str | bytes) -> None:
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def _sibling(out: Path, suffix: str) -> Path:
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(stem + suffix)


def _cmd_frontier(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    frontier = _solve(args, profile)
    _write(args.out, frontier.to_csv())
    plans_path = args.plans or _sibling(args.out, ".plans.npz")
    _write(plans_path, frontier.to_bytes())
    print(
        f"{len(frontier)} points, {frontier.time_s[0]:.6g} s → {frontier.time_s[-1]:.6g} s, "
        f"{frontier.energy_j[0]:.6g} J → {frontier.energy_j[-1]:.6g} J "
        f"({frontier.problem.mode.value} mode, solved in {frontier.solve_time_s:.2f} s; stopped: {frontier.stop_reason})"
    )
    print(f"frontier: {args.out}")
    print(f"plans:    {plans_path}")
    if args.realised:
        times, energies = realised_frontier(frontier, profile)
        lines = ["time,energy,realised_time,realised_energy"]
        for t, e, rt, re_ in zip(frontier.time_s, frontier.energy_j, times, energies, strict=True):
            lines.append(f"{float(t)!r},{float(e)!r},{float(rt)!r},{float(re_)!r}")
        realised_path = _sibling(args.out, ".realised.csv")
        _write(realised_path, "\n".join(lines) + "\n")
        print(f"realised: {realised_path}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    if args.frontier is not None:
        try:
            data = args.frontier.read_bytes()
        except OSError as e:
            raise PlannerError(f"cannot read {str(args.frontier)!r}: {e.strerror}") from None
        frontier = Frontier.from_bytes(data)
        if frontier.problem != _problem(args):
            raise PlannerError(
                f"{args.frontier} was solved for {frontier.problem.to_dict()}, not for the arguments given"
            )
        if frontier.profile_digest and frontier.profile_digest != profile.digest():
            raise PlannerError(f"{args.frontier} was solved from a different profile")
    else:
        frontier = _solve(args, profile)
    choice = choose_for_straggler(frontier, profile, args.straggler_time, basis=args.basis)
    plan = plan_at(frontier, choice.index)
    summary: dict[str, Any] = {**choice.summary(), "mode": frontier.problem.mode.value}
    document = {"summary": summary, "ranks": plan.rank_schedules()}
    _write(args.out, json.dumps(document, indent=1) + "\n")
    if args.csv is not None:
        _write(args.csv, plan.to_csv())
    straggler = "none (all-max time)" if args.straggler_time is None else f"{choice.straggler_time_s:.6g} s"
    print(f"straggler time: {straggler}")
    print(f"chosen point:   {choice.index} of {len(frontier)} (planned {choice.planned_time_s:.6g} s)")
    print(f"realised:       {choice.realised.time_s:.6g} s, {choice.realised_energy_j:.6g} J per iteration")
    print(f"all-max:        {choice.baseline.time_s:.6g} s, {choice.baseline_energy_j:.6g} J per iteration")
    print(f"saving:         {choice.saving_j:.6g} J ({100 * choice.saving_fraction:.2f} %)")
    if not choice.meets_time:
        slower = 100 * (choice.realised.time_s / choice.straggler_time_s - 1)
        print(
            f"warning: no plan realises {choice.straggler_time_s:.6g} s; chose the fastest, {slower:.2f} % slower "
            "(a smaller --unit-time gives finer plans)",
            file=sys.stderr,
        )
    print(f"plan:           {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "frontier":
            return _cmd_frontier(args)
        return _cmd_plan(args)
    except PlannerError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
