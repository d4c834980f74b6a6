"""Comparing runs as plain functions: which runs a compare link names, their totals, and how they differ.

A compare link names its runs in ``?runs=NAME,NAME,...``. Run names are unique per project only, so an
entry is either a bare ``NAME`` (it must name exactly one of the user's visible runs) or ``PROJECT/NAME``.
Anything wrong with the list (unknown or ambiguous names, duplicates, fewer than 2 or more than 10 runs)
comes back as messages for the page, never as an exception. A run in a project the user is not a member
of is reported exactly like a name that does not exist, so a link reveals nothing about other projects.

Totals come from the per-GPU running totals (the same numbers as the run page), emissions and offset cost
from the carbon app's stored figures; nothing here is read from a downsampled chart series.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from django.db.models import Count, F, Max, Min, Q, Sum

from dashboard.projects.models import Visitor
from dashboard.telemetry.models import Gpu, Run, RunGpu, RunNode
from dashboard.telemetry.windows import TimeRange
from dashboard.telemetry.work import Work, runs_work
from dashboard.web.templatetags.units import duration, si, watts
from planner.carbon.figures import runs_carbon
from planner.units import J_PER_KWH, MS_PER_HOUR, MS_PER_S, format_energy_kwh, format_mass_g, format_money

MIN_RUNS = 2
MAX_RUNS = 10
# Longest entry worth looking up: a project name and a run name (200 characters each) and the slash.
MAX_ENTRY_CHARS = 401


# --- which runs ------------------------------------------------------------------------------------------


def parse_entries(params: Any) -> list[str]:
    """The run entries of a query: ``runs=a,b`` (one parameter, split on commas) or ``runs=a&runs=b``.

    The repeated form is what the runs list's plain HTML form sends; it also carries names that contain
    a comma. Blank entries are dropped.
    """
    values = params.getlist("runs") if hasattr(params, "getlist") else [params.get("runs", "")]
    if len(values) == 1:
        values = values[0].split(",")
    return [v.strip() for v in values if v.strip()]


def _shown(entry: str) -> str:
    return repr(entry if len(entry) <= 60 else entry[:57] + "...")


@dataclass(frozen=True)
class Selection:
    """The runs a compare link resolved to, in the link's order, and what was wrong with it."""

    runs: list[Run] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # shortest unambiguous name of each run
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and len(self.runs) >= MIN_RUNS


def _qualified(run: Run) -> str:
    return f"{run.project.name}/{run.name}"


def _candidates(entry: str) -> set[str]:
    """Run names an entry could mean: itself, and whatever follows each slash (project names may hold one)."""
    return {entry} | {entry[i + 1:] for i, c in enumerate(entry) if c == "/"}


def _searchable(entry: str) -> bool:
    # Longer than any run could be named, or holding a NUL (which PostgreSQL refuses in text): unknown.
    return len(entry) <= MAX_ENTRY_CHARS and "\x00" not in entry


def _matches(entry: str, rows: Sequence[Run]) -> list[Run]:
    return [r for r in rows if r.name == entry or _qualified(r) == entry]


def resolve(user: Visitor, entries: Sequence[str]) -> Selection:
    """Resolve entries to runs the user may see; every problem is reported, naming the entries at fault."""
    if not entries:
        return Selection(errors=["Pick 2 to 10 runs to compare: tick them in the runs list."])
    if len(entries) > MAX_RUNS:
        return Selection(errors=[f"Compare takes at most {MAX_RUNS} runs; this link names {len(entries)}."])
    errors: list[str] = []
    lookup = [e for e in entries if _searchable(e)]
    names = set().union(*(_candidates(e) for e in lookup)) if lookup else set()
    rows = list(Run.objects.for_user(user).filter(name__in=names).select_related("project").prefetch_related("tags"))
    runs: list[Run] = []
    seen: dict[int, str] = {}
    for entry in entries:
        found = _matches(entry, rows) if _searchable(entry) else []
        if not found:
            errors.append(f"No run {_shown(entry)} in your projects.")
        elif len(found) > 1:
            where = ", ".join(sorted(_qualified(r) for r in found))
            errors.append(f"{_shown(entry)} names more than one of your runs ({where}): write it as PROJECT/NAME.")
        elif found[0].pk in seen:
            first = seen[found[0].pk]
            same = "is listed twice" if first == entry else f"is the same run as {_shown(first)}"
            errors.append(f"{_shown(entry)} {same}.")
        else:
            seen[found[0].pk] = entry
            runs.append(found[0])
    if not errors and len(runs) < MIN_RUNS:
        errors.append(f"Compare needs at least {MIN_RUNS} runs; this link names {len(runs)}.")
    # A bare name is enough when it resolves back to the same run; every name it could clash with was
    # fetched above, since the candidates of PROJECT/NAME include NAME and its own suffixes.
    labels = [r.name if _matches(r.name, rows) == [r] else _qualified(r) for r in runs]
    return Selection(runs, labels, errors)


def pick_baseline(selection: Selection, entry: str | None) -> tuple[int, str | None]:
    """Index of the baseline run (the first unless ``entry`` names another), and an error message if any."""
    if not entry:
        return 0, None
    found = [i for i, r in enumerate(selection.runs) if entry in (r.name, _qualified(r))]
    if len(found) == 1:
        return found[0], None
    if found:
        return 0, f"The baseline {_shown(entry)} names more than one compared run: write it as PROJECT/NAME."
    return 0, f"The baseline {_shown(entry)} is not one of the compared runs."


def canonical_query(labels: Sequence[str], baseline: int, *, diff: bool, x: str) -> str:
    """The query string a compare page's address should carry (shortest names), for sharing.

    Commas separate the runs; a name holding a comma makes the runs a repeated parameter instead.
    """
    if any("," in label for label in labels):
        parts = [f"runs={quote(label, safe='/')}" for label in labels]
    else:
        parts = ["runs=" + ",".join(quote(label, safe="/") for label in labels)]
    if baseline:
        parts.append(f"baseline={quote(labels[baseline], safe='/')}")
    if diff:
        parts.append("diff=1")
    if x != "time":
        parts.append(f"x={quote(x)}")
    return "&".join(parts)


# --- totals ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTotals:
    """One run's figures for the compare table. ``None`` means not known (no steps, no carbon figures)."""

    run: Run
    label: str
    energy_j: float
    readings: TimeRange | None  # from the first reading of any GPU to the last; None while there is none
    gpu_hours: float
    peak_gpu_power_w: float
    gpus: int
    nodes: int
    samples: int
    estimated: bool
    gpu_models: tuple[str, ...] = ()
    places: tuple[str, ...] = ()
    steps: int | None = None
    emissions_g: float | None = None
    offset_cost: float | None = None
    offset_currency: str = ""
    carbon_note: str = ""
    work: Work = field(default_factory=Work)  # units of work: reported by the agents or entered on the run page

    @property
    def has_samples(self) -> bool:
        return self.readings is not None

    @property
    def duration_ms(self) -> int:
        """Wall-clock span of the readings (0 without any)."""
        return self.readings.to_ms - self.readings.from_ms if self.readings else 0

    @property
    def duration_s(self) -> float:
        return self.duration_ms / MS_PER_S

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH

    @property
    def mean_power_w(self) -> float:
        """Mean total draw of the run's GPUs: energy over wall-clock duration (as on the run page)."""
        return self.energy_j / self.duration_s if self.duration_s else 0.0

    @property
    def j_per_step(self) -> float | None:
        return self.energy_j / self.steps if self.steps else None

    def j_per(self, unit: str) -> float | None:
        return self.work.per(unit, self.energy_j)

    def g_per(self, unit: str) -> float | None:
        return self.work.per(unit, self.emissions_g)


def read_totals(runs: Sequence[Run], labels: Sequence[str]) -> list[RunTotals]:
    """Totals of each run, in order, in a handful of queries whatever the number of GPUs."""
    ids = [r.pk for r in runs]
    # Energy, time span and samples count every device; what is named after GPUs counts GPUs only.
    gpu = Q(gpu__component=Gpu.Component.GPU)
    sums: dict[int, Mapping[str, Any]] = {
        row["run_id"]: row
        for row in RunGpu.objects.filter(run_id__in=ids).values("run_id").annotate(
            total_j=Sum("energy_j"), start_ms=Min("first_ms"), end_ms=Max("last_ms"),
            peak_power_w=Max("peak_power_w", filter=gpu), gpu_ms=Sum(F("last_ms") - F("first_ms"), filter=gpu),
            gpus=Count("id", filter=gpu),
            nodes=Count("gpu__node", distinct=True), samples=Sum("samples"),
            estimated=Count("id", filter=Q(estimated=True)),
        ).order_by()
    }
    models: dict[int, list[str]] = defaultdict(list)
    for run_id, name in RunGpu.objects.filter(gpu, run_id__in=ids).values_list("run_id", "gpu__name").distinct().order_by(
        "run_id", "gpu__name"
    ):
        models[run_id].append(name or "unknown")
    places: dict[int, list[str]] = defaultdict(list)
    for run_id, zone, region in RunNode.objects.filter(run_id__in=ids).values_list("run_id", "zone", "region").distinct(
    ).order_by("run_id", "zone", "region"):
        place = " · ".join(p for p in (zone, region) if p)
        if place and place not in places[run_id]:
            places[run_id].append(place)
    work = runs_work(ids)
    totals = []
    for run, label in zip(runs, labels, strict=True):
        row = sums.get(run.pk, {})
        first_ms, last_ms = row.get("start_ms"), row.get("end_ms")
        readings = None if first_ms is None or last_ms is None else TimeRange(first_ms, last_ms)
        totals.append(RunTotals(
            run=run, label=label, energy_j=float(row.get("total_j") or 0.0), readings=readings,
            gpu_hours=float(row.get("gpu_ms") or 0) / MS_PER_HOUR,
            peak_gpu_power_w=float(row.get("peak_power_w") or 0.0), gpus=int(row.get("gpus") or 0),
            nodes=int(row.get("nodes") or 0), samples=int(row.get("samples") or 0),
            estimated=bool(row.get("estimated")), gpu_models=tuple(models[run.pk]), places=tuple(places[run.pk]),
            work=work[run.pk],
        ))
    return _with_carbon(totals)


def _with_carbon(totals: list[RunTotals]) -> list[RunTotals]:
    """Add stored emissions and offset cost where they are current; otherwise say why they are missing.

    Figures are computed by tasks (a streaming run's at most every ``WATTWISE_CARBON_RECOMPUTE_S``);
    comparing a run's current energy with emissions of less energy would mislead, so figures that are
    missing, behind or stale show as "—" with a note saying which.
    """
    carbon = runs_carbon([t.run for t in totals], {t.run.pk: t.energy_j for t in totals})
    out = []
    for t in totals:
        figures = carbon[t.run.pk]
        if not figures.current:
            out.append(replace(t, carbon_note=figures.label))
            continue
        offset = figures.offset
        quote = offset.quote if offset else None
        out.append(replace(
            t, emissions_g=figures.totals.emissions_g if figures.totals else None,
            offset_cost=quote.cost if quote else None,
            offset_currency=quote.currency if quote else "", carbon_note=offset.problem if offset else "",
        ))
    return out


def with_steps(totals: Sequence[RunTotals], steps: Mapping[int, int | None]) -> list[RunTotals]:
    """Totals with each run's step count (from its ``step_end`` markers) filled in."""
    return [replace(t, steps=steps.get(t.run.pk)) for t in totals]


# --- the table ------------------------------------------------------------------------------------------


def _plain(value: float) -> str:
    """A number to about four significant figures, never rounded to zero."""
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 100:
        return f"{value:,.1f}"
    if size >= 1:
        return f"{value:,.3f}"
    return f"{value:.3g}"


def _signed(text: str, value: float) -> str:
    # A real minus sign: the sign carries the meaning, not only the colour.
    return ("+" if value > 0 else "−" if value < 0 else "±") + text.lstrip("-")


def _shows_zero(text: str) -> bool:
    return not any(c in "123456789" for c in text)


def _duration(seconds: float) -> str:
    # Differences are shown with their own sign, so the length itself is unsigned.
    return duration(abs(seconds))


@dataclass(frozen=True)
class Measure:
    """A numeric row: how to read it from totals, print it, and whether lower is better."""

    key: str
    label: str
    help: str
    value: Callable[[RunTotals], float | None]
    text: Callable[[float], str]
    lower_is_better: bool | None = True
    unit_of: Callable[[RunTotals], str] | None = None  # runs in different units are not differenced


MEASURES: tuple[Measure, ...] = (
    Measure("energy", "Energy", "GPU energy from the NVML counters, all GPUs", lambda t: t.energy_kwh,
            format_energy_kwh),
    Measure("duration", "Duration", "first to last reading of any GPU", lambda t: t.duration_s, _duration),
    Measure("mean_power", "Mean power", "all GPUs together: energy ÷ duration", lambda t: t.mean_power_w, watts,
            lower_is_better=None),
    Measure("peak_power", "Peak GPU power", "highest single-GPU reading", lambda t: t.peak_gpu_power_w, watts,
            lower_is_better=None),
    Measure("gpu_hours", "GPU-hours", "each GPU's first-to-last span, summed", lambda t: t.gpu_hours,
            lambda v: _plain(v)),
    Measure("steps", "Steps", "training steps between the first and last step marker", lambda t: t.steps,
            lambda v: f"{v:,.0f}", lower_is_better=None),
    Measure("j_per_step", "Energy per step", "run energy ÷ steps", lambda t: t.j_per_step,
            lambda v: f"{_plain(v)} J"),
    Measure("tokens", "Tokens", "units of work: reported by the tracker or entered on the run page",
            lambda t: t.work.get("tokens"), lambda v: f"{v:,.0f}", lower_is_better=None),
    Measure("j_per_token", "Energy per token", "run energy ÷ tokens", lambda t: t.j_per("tokens"),
            lambda v: si(v, "J")),
    Measure("g_per_token", "Emissions per token", "location-based emissions ÷ tokens", lambda t: t.g_per("tokens"),
            lambda v: si(v, "gCO₂e")),
    Measure("work_samples", "Samples trained", "units of work: reported or entered", lambda t: t.work.get("samples"),
            lambda v: f"{v:,.0f}", lower_is_better=None),
    Measure("j_per_sample", "Energy per sample", "run energy ÷ samples trained", lambda t: t.j_per("samples"),
            lambda v: si(v, "J")),
    Measure("emissions", "Emissions", "location-based, CO₂e (carbon app's stored figures)",
            lambda t: t.emissions_g, lambda v: f"{format_mass_g(v)} CO₂e"),
    Measure("offset_cost", "Offset cost", "credits to retire at the project's offset policy and price",
            lambda t: t.offset_cost, lambda v: format_money(v, ""), unit_of=lambda t: t.offset_currency),
)


@dataclass(frozen=True)
class Cell:
    text: str
    value: float | None = None
    delta: float | None = None  # value − baseline value
    pct: float | None = None  # delta as a percentage of the baseline value
    delta_text: str = ""
    verdict: str = ""  # better | worse | same | "" (no judgement)
    baseline: bool = False


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    help: str
    cells: tuple[Cell, ...]
    numeric: bool

    @property
    def identical(self) -> bool:
        """Every run shows the same thing: the row a "differences only" view hides."""
        return len({c.text for c in self.cells}) <= 1


def _verdict(delta: float, base: float, lower_is_better: bool | None) -> str:
    if math.isclose(delta, 0.0, abs_tol=1e-12 * max(abs(base), 1.0)):
        return "same"
    if lower_is_better is None:
        return ""
    return "better" if (delta < 0) == lower_is_better else "worse"


def numeric_row(measure: Measure, totals: Sequence[RunTotals], baseline: int) -> Row:
    """A figure of every run, with its difference against the baseline run's."""
    values = [measure.value(t) for t in totals]
    units = [measure.unit_of(t) if measure.unit_of else "" for t in totals]

    def text(v: float | None, unit: str) -> str:
        return "—" if v is None else f"{measure.text(v)} {unit}".rstrip()

    base, base_unit = values[baseline], units[baseline]
    cells = []
    for i, (v, unit) in enumerate(zip(values, units, strict=True)):
        if i == baseline or v is None or base is None or unit != base_unit:
            cells.append(Cell(text(v, unit), v, baseline=i == baseline))
            continue
        delta = v - base
        pct = delta / base * 100.0 if base else None
        verdict = _verdict(delta, base, measure.lower_is_better)
        # A difference too small to show, in both its forms, reads "±0", never "−0 W (−0.0 %)".
        tiny = _shows_zero(measure.text(delta)) and (pct is None or _shows_zero(f"{pct:.1f}"))
        shown = "±0" if verdict == "same" or tiny else f"{_signed(measure.text(delta), delta)} {unit}".rstrip()
        if pct is not None and verdict != "same" and not tiny:
            shown += f" ({_signed(f'{pct:.1f}', pct)} %)"
        cells.append(Cell(text(v, unit), v, delta, pct, shown, verdict))
    return Row(measure.key, measure.label, measure.help, tuple(cells), numeric=True)


DESCRIPTIONS: tuple[tuple[str, str, str, Callable[[RunTotals], str]], ...] = (
    ("project", "Project", "", lambda t: t.run.project.name),
    ("status", "Status", "", lambda t: t.run.status),
    ("gpus", "GPUs", "GPUs that sent samples", lambda t: str(t.gpus)),
    ("gpu_model", "GPU model", "", lambda t: ", ".join(t.gpu_models) or "—"),
    ("nodes", "Nodes", "", lambda t: str(t.nodes)),
    ("tags", "Tags", "", lambda t: ", ".join(tag.name for tag in t.run.tags.all()) or "—"),
    ("where", "Zone / region", "where the agents said they ran", lambda t: ", ".join(t.places) or "—"),
    ("energy_source", "Energy from", "NVML energy counter, or power integrated where a GPU has none",
     lambda t: "counter, some GPUs estimated" if t.estimated else "counter"),
)


def table(totals: Sequence[RunTotals], baseline: int, extra: Sequence[Row] = ()) -> list[Row]:
    """The compare table: figures with their differences against the baseline run (``extra`` figures after
    energy per step), then descriptions."""
    rows: list[Row] = []
    for m in MEASURES:
        rows.append(numeric_row(m, totals, baseline))
        if m.key == "j_per_step":
            rows += extra
    for key, label, help_text, describe in DESCRIPTIONS:
        cells = tuple(Cell(describe(t), baseline=i == baseline) for i, t in enumerate(totals))
        rows.append(Row(key, label, help_text, cells, numeric=False))
    return rows


def pareto_optimal(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (time, energy) points: True where no other point is at least as good on both and better on one."""
    return [
        not any(
            (xo <= x and yo <= y) and (xo < x or yo < y)
            for j, (xo, yo) in enumerate(points) if j != i
        )
        for i, (x, y) in enumerate(points)
    ]
