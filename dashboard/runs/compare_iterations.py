"""The compare page's rows from the frequency plan client's markers: iteration time and energy per iteration
(measured as :mod:`planner.plans.realised` defines them), and, for a run whose plan names another compared
run as its ``baseline_run``, the saving it realised against that run beside the one the planner predicted."""

from __future__ import annotations

from collections.abc import Sequence

from dashboard.runs.compare import Cell, Measure, Row, RunTotals, numeric_row
from planner.plans.measured import has_iterations, realised_runs
from planner.plans.realised import RunRealised, saving_fraction
from planner.units import format_fraction_pct, format_si

TIME_HELP = "mean over iterations of the slowest rank's iteration time, the first iterations after each plan left out"
ENERGY_HELP = "each rank's mean GPU energy per iteration, summed over the ranks (plan client's iteration markers)"
REALISED_HELP = "1 − energy per iteration ÷ that of the run the plan names as its baseline (baseline_run)"
PREDICTED_HELP = "the planner's: 1 − predicted energy per iteration ÷ predicted at all-max clocks"


def _realised_in(figures: dict[int, RunRealised], attribute: str) -> Measure:
    def value(t: RunTotals) -> float | None:
        found = figures.get(t.run.pk)
        return getattr(found.whole, attribute) if found is not None else None

    if attribute == "time_s":
        return Measure("iteration_time", "Iteration time", TIME_HELP, value, lambda v: format_si(v, "s"))
    return Measure("iteration_energy", "Energy per iteration", ENERGY_HELP, value, lambda v: format_si(v, "J"))


def rows(totals: Sequence[RunTotals], baseline: int) -> list[Row]:
    """The rows, when any compared run sent ``iteration`` markers; none otherwise."""
    measured = has_iterations([t.run.pk for t in totals])
    if not measured:
        return []
    figures = realised_runs(t.run for t in totals if t.run.pk in measured)
    out = [numeric_row(_realised_in(figures, "time_s"), totals, baseline),
           numeric_row(_realised_in(figures, "energy_j"), totals, baseline)]
    by_name = {(t.run.project_id, t.run.name): t for t in totals}
    realised, predicted = [], []
    for i, t in enumerate(totals):
        found = figures.get(t.run.pk)
        named = by_name.get((t.run.project_id, found.baseline_run)) if found and found.baseline_run else None
        if found is None or named is None or named is t:
            realised.append(Cell("—", baseline=i == baseline))
            predicted.append(Cell("—", baseline=i == baseline))
            continue
        against = f"against {named.label}"
        saving = saving_fraction(found.whole, figures[named.run.pk].whole if named.run.pk in figures else None)
        realised.append(Cell("—" if saving is None else format_fraction_pct(saving), saving,
                             delta_text=against, baseline=i == baseline))
        planned = found.predicted_saving_fraction()
        predicted.append(Cell("—" if planned is None else format_fraction_pct(planned), planned,
                              delta_text="against all-max clocks", baseline=i == baseline))
    if any(c.value is not None for c in realised + predicted):
        out += [Row("realised_saving", "Realised saving", REALISED_HELP, tuple(realised), numeric=True),
                Row("predicted_saving", "Predicted saving", PREDICTED_HELP, tuple(predicted), numeric=True)]
    return out
