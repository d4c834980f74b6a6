"""What the frontier and plan pages show, as plain data computed from a solved frontier.

No queries and no HTTP here: :mod:`planner.plans.views` reads the job (:func:`planner.plans.planning.load`) and
hands it over; :mod:`planner.plans.charts` draws what these functions return.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from planner import perseus
from planner.plans import charts
from planner.plans.planning import Solved

CHART_POINTS = 2000
TIMELINE_MAX_COMPUTATIONS = 20_000


# --- per-point figures ----------------------------------------------------------------------------------


def display_indices(num_points: int, limit: int = CHART_POINTS, keep: tuple[int, ...] = ()) -> np.ndarray:
    """At most about ``limit`` evenly spread frontier indices, always with both ends and ``keep``."""
    if num_points <= limit:
        return np.arange(num_points)
    picked = np.unique(np.round(np.linspace(0, num_points - 1, limit)).astype(np.int64))
    extra = np.array([k for k in keep if 0 <= k < num_points], dtype=np.int64)
    return np.unique(np.concatenate([picked, extra]))


def stage_mean_frequencies(frontier: perseus.Frontier, indices: np.ndarray) -> np.ndarray:
    """Mean planned frequency (MHz) of every stage at each point in ``indices`` (ascending): (len, S)."""
    dag = frontier.dag
    n = dag.num_computations
    stages = np.array([c.stage for c in dag.computations], dtype=np.int64)
    counts = np.bincount(stages, minlength=dag.num_stages).astype(float)
    # Per computation, the frequency chosen at every duration min..max of its options.
    base = np.zeros(n, dtype=np.int64)
    table: list[int] = []
    offsets: dict[tuple[int, str], int] = {}
    for i, comp in enumerate(dag.computations):
        key = (comp.stage, comp.instruction)
        opts = frontier.options[key]
        if key not in offsets:
            offsets[key] = len(table) - opts.min_duration
            table.extend(opts.freq_mhz[opts.option_for(d)] for d in range(opts.min_duration, opts.max_duration + 1))
        base[i] = offsets[key]
    freq_table = np.array(table, dtype=np.float64)
    durations = frontier.start_durations.astype(np.int64).copy()
    applied = 0
    out = np.empty((len(indices), dag.num_stages))
    for row, k in enumerate(indices):
        end = int(frontier.delta_ptr[int(k) + 1])
        if end > applied:
            np.add.at(durations, frontier.delta_ops[applied:end], frontier.delta_signs[applied:end].astype(np.int64))
            applied = end
        freqs = freq_table[base + durations]
        out[row] = np.bincount(stages, weights=freqs, minlength=dag.num_stages) / counts
    return out


def energy_change_vs_all_max(solved: Solved, energies_j: np.ndarray) -> np.ndarray:
    """Realised energy per iteration against all-max's (each at its own iteration time), as a fraction:
    −0.16 is 16 % less. With no straggler, that is what a plan saves per iteration."""
    return np.asarray(energies_j, dtype=float) / solved.baseline.energy_j - 1.0


# --- the frontier page ------------------------------------------------------------------------------------


class _HasSaving(Protocol):
    @property
    def saving_fraction(self) -> float: ...

    @property
    def time_change(self) -> float: ...


class _SavingText:
    """Percent forms of a figure's ``saving_fraction`` and ``time_change`` (realised, against all-max)."""

    @property
    def saving_pct(self: _HasSaving) -> float:
        return 100.0 * self.saving_fraction

    @property
    def time_change_text(self: _HasSaving) -> str:
        """'+0.48 %': signed, as a slowdown reads."""
        return f"{100.0 * self.time_change:+.2f} %"


@dataclass(frozen=True)
class Row(_SavingText):
    """A row of the planned-vs-realised table."""

    label: str
    index: int | None
    planned_time_s: float | None
    planned_energy_j: float | None
    realised_time_s: float
    realised_energy_j: float
    time_change: float
    """Realised time against all-max, as a fraction (+0.005 = 0.5 % slower)."""
    saving_fraction: float
    """Realised energy per iteration against all-max's, each at its own time, as a fraction saved (0.16 = 16 %)."""


def _row(solved: Solved, label: str, k: int) -> Row:
    base = solved.baseline
    rt, re_ = float(solved.realised[0][k]), float(solved.realised[1][k])
    return Row(
        label, k, float(solved.frontier.time_s[k]), float(solved.frontier.energy_j[k]), rt, re_,
        rt / base.time_s - 1.0, 1.0 - re_ / base.energy_j,
    )


def table_rows(solved: Solved) -> list[Row]:
    """All-max, fastest, least-energy and slowest plans."""
    base = solved.baseline
    n = len(solved.frontier)
    rows = [Row("all at max frequency", None, None, None, base.time_s, base.energy_j, 0.0, 0.0)]
    rows.append(_row(solved, "fastest plan", n - 1))
    rows.append(_row(solved, "least-energy plan", int(np.argmin(solved.realised[1]))))
    rows.append(_row(solved, "slowest plan", 0))
    return rows


def frontier_figure(solved: Solved, choice: perseus.StragglerChoice | None = None) -> Any:
    frontier, (rt, re_) = solved.frontier, solved.realised
    n = len(frontier)
    keep = (n - 1,) + ((choice.index,) if choice is not None else ())
    idx = display_indices(n, keep=keep)
    base = solved.baseline
    fastest = _row(solved, "fastest plan", n - 1)
    marks = [charts.Mark(
        "fastest plan (realised)", fastest.realised_time_s, fastest.realised_energy_j,
        f"<b>fastest plan</b>: {100 * -fastest.saving_fraction:+.1f} % energy<br>{100 * fastest.time_change:+.2f} % time vs all-max",
        color=charts.CHOSEN, ax=40, ay=-90,
    )]
    if choice is not None:
        marks.append(charts.Mark(
            "chosen for T′ (realised)", choice.realised.time_s, choice.realised.energy_j,
            f"<b>for T′ = {choice.straggler_time_s:.4g} s</b>: plan {choice.index}<br>"
            f"saves {100 * choice.saving_fraction:.1f} % ({choice.saving_j:,.0f} J per iteration)",
            color=charts.STRAGGLER, ax=70, ay=-80,
        ))
    return charts.frontier_chart(
        index=idx.tolist(), planned_time_s=frontier.time_s[idx], planned_energy_j=frontier.energy_j[idx],
        realised_time_s=rt[idx], realised_energy_j=re_[idx],
        energy_change=energy_change_vs_all_max(solved, re_[idx]),
        time_change=rt[idx] / base.time_s - 1.0,
        stage_mean_mhz=stage_mean_frequencies(frontier, idx),
        baseline_time_s=base.time_s, baseline_energy_j=base.energy_j, marks=marks,
        straggler_time_s=choice.straggler_time_s if choice is not None else None,
    )


@dataclass(frozen=True)
class IterationSpan:
    """The iteration times a frontier's plans cover: a straggler time in it gets a plan that fits."""

    fastest_s: float  # every stage at its highest frequency: a straggler can only be slower
    slowest_s: float  # the frontier's slowest plan, realised: beyond it the cheapest plan just waits longer

    def contains(self, time_s: float) -> bool:
        # The tolerances of perseus.choose_for_straggler's own checks.
        return self.fastest_s * (1 - 1e-9) <= time_s <= self.slowest_s * (1 + 1e-12)


def iteration_span(solved: Solved) -> IterationSpan:
    fastest = solved.baseline.time_s
    return IterationSpan(fastest, max(fastest, float(np.max(solved.realised[0]))))


def choose(solved: Solved, straggler_time_s: float | None) -> perseus.StragglerChoice:
    """The plan for a straggler time (None: no straggler). Raises ``PlannerError`` (StragglerError)."""
    return perseus.choose_for_straggler(solved.frontier, solved.profile, straggler_time_s, realised=solved.realised)


@dataclass(frozen=True)
class ChoiceView:
    """A straggler choice as the page prints it."""

    choice: perseus.StragglerChoice

    @property
    def index(self) -> int:
        return self.choice.index

    @property
    def straggler_time_s(self) -> float:
        return self.choice.straggler_time_s

    @property
    def saving_pct(self) -> float:
        return 100.0 * self.choice.saving_fraction

    @property
    def saving_j(self) -> float:
        return self.choice.saving_j

    @property
    def plan_energy_j(self) -> float:
        return self.choice.realised_energy_j

    @property
    def baseline_energy_j(self) -> float:
        return self.choice.baseline_energy_j

    @property
    def realised_time_s(self) -> float:
        return self.choice.realised.time_s

    @property
    def planned_time_s(self) -> float:
        return self.choice.planned_time_s

    @property
    def meets_time(self) -> bool:
        return self.choice.meets_time

    @property
    def overrun_pct(self) -> float:
        """How much slower than T′ the plan realises, when it does not meet it."""
        return 100.0 * (self.choice.realised.time_s / self.choice.straggler_time_s - 1.0)


# --- the plan page ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankRow:
    rank: int
    computations: int
    min_mhz: int
    mean_mhz: float
    max_mhz: int
    below_max: int


@dataclass(frozen=True)
class PlanFigures(_SavingText):
    plan: perseus.Plan
    realised: perseus.Evaluation
    baseline: perseus.Evaluation
    straggler_time_s: float | None

    @property
    def plan_energy_j(self) -> float:
        """Realised energy per iteration: blocking until T′ with a straggler, else at the plan's own time."""
        if self.straggler_time_s is None:
            return self.realised.energy_j
        return self.realised.energy_at(self.straggler_time_s)

    @property
    def baseline_energy_j(self) -> float:
        """All-max energy per iteration: blocking until T′ with a straggler, else at its own time."""
        if self.straggler_time_s is None:
            return self.baseline.energy_j
        return self.baseline.energy_at(self.straggler_time_s)

    @property
    def saving_j(self) -> float:
        return self.baseline_energy_j - self.plan_energy_j

    @property
    def saving_fraction(self) -> float:
        return self.saving_j / self.baseline_energy_j

    @property
    def time_change(self) -> float:
        return self.realised.time_s / self.baseline.time_s - 1.0

    @property
    def meets_straggler(self) -> bool:
        return self.straggler_time_s is None or self.realised.time_s <= self.straggler_time_s * (1 + 1e-12)


def plan_figures(solved: Solved, k: int, straggler_time_s: float | None = None) -> PlanFigures:
    return PlanFigures(
        perseus.plan_at(solved.frontier, k),
        perseus.evaluate_point(solved.frontier, solved.profile, k),
        solved.baseline,
        straggler_time_s,
    )


def rank_rows(plan: perseus.Plan, max_freq_mhz: int) -> list[RankRow]:
    rows = []
    for r, steps in enumerate(plan.stages):
        freqs = [s.freq_mhz for s in steps]
        rows.append(RankRow(r, len(freqs), min(freqs), sum(freqs) / len(freqs), max(freqs),
                            sum(1 for f in freqs if f < max_freq_mhz)))
    return rows


def timeline_figure(solved: Solved, k: int, basis: str) -> Any | None:
    """The plan's timeline chart, or None when the pipeline is too large to draw bar by bar."""
    if solved.frontier.dag.num_computations > TIMELINE_MAX_COMPUTATIONS:
        return None
    entries = perseus.timeline(solved.frontier, solved.profile, k, basis=basis)
    bars = [charts.Bar(e.stage, e.instruction, e.microbatch, e.freq_mhz, e.start_s, e.end_s, e.critical) for e in entries]
    freqs = solved.profile.frequencies_mhz
    what = "realised: profiled times at the planned frequencies" if basis == "realised" else "planned: durations in whole units of τ"
    return charts.timeline_chart(
        bars, num_stages=solved.frontier.problem.num_stages, freq_range_mhz=(min(freqs), max(freqs)),
        title=f"Plan {k}: one iteration per stage ({what})",
    )


def profile_series(profile: perseus.Profile) -> list[charts.ProfileSeries]:
    """Each stage's forward and backward figures; stages whose figures are all equal come as one series each."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for stage in range(profile.num_stages):
        key = tuple(tuple(np.asarray(getattr(profile.get(stage, instruction), field)).tolist())
                    for instruction in ("forward", "backward") for field in ("freq_mhz", "time_s", "energy_j"))
        groups.setdefault(key, []).append(stage)
    out = []
    for stages in groups.values():
        for instruction in ("forward", "backward"):
            e = profile.get(stages[0], instruction)
            out.append(charts.ProfileSeries(tuple(stages), instruction, e.freq_mhz, e.time_s, e.energy_j))
    return out


# --- downloads ----------------------------------------------------------------------------------------------


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "profile"


def download_stem(solved: Solved, k: int) -> str:
    job = solved.job
    return f"{slug(job.profile.name)}-{job.num_stages}x{job.num_microbatches}-plan{k}"


def plan_summary(solved: Solved, figures: PlanFigures) -> dict[str, Any]:
    plan, job = figures.plan, solved.job
    summary: dict[str, Any] = {
        "profile": job.profile.name,
        "profile_sha256": job.profile.digest,
        "problem": solved.frontier.problem.to_dict(),
        "point": plan.index,
        "points": len(solved.frontier),
        "planned_time_s": plan.time_s,
        "planned_energy_j": plan.energy_j,
        "realised_time_s": figures.realised.time_s,
        "realised_energy_j": figures.realised.energy_j,
        "baseline_time_s": figures.baseline.time_s,
        "baseline_energy_j": figures.baseline.energy_j,
        "saving_j": figures.saving_j,
        "saving_fraction": figures.saving_fraction,
    }
    if figures.straggler_time_s is not None:
        summary["straggler_time_s"] = figures.straggler_time_s
        summary["meets_time"] = figures.meets_straggler
    return summary


def plan_json(solved: Solved, figures: PlanFigures) -> str:
    """``{"summary": {...}, "ranks": [{"rank": r, "frequencies": [...]}, ...]}`` (the CLI's shape)."""
    return json.dumps({"summary": plan_summary(solved, figures), "ranks": figures.plan.rank_schedules()}, indent=1)


def rank_json(plan: perseus.Plan, rank: int) -> str:
    """One rank's schedule, exactly the Zeus ``FrequencySchedule`` shape."""
    return json.dumps(plan.rank_schedule(rank))


def ranks_zip(solved: Solved, figures: PlanFigures) -> bytes:
    """Every rank's JSON, the plan CSV and the summary, in one zip."""
    stem = download_stem(solved, figures.plan.index)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for rank in range(len(figures.plan.stages)):
            z.writestr(f"{stem}/rank-{rank}.json", rank_json(figures.plan, rank))
        z.writestr(f"{stem}/plan.csv", figures.plan.to_csv())
        z.writestr(f"{stem}/plan.json", plan_json(solved, figures))
    return buf.getvalue()
