"""The ``co2_eq_emissions`` block of a Hugging Face model card for one run, or several runs that together
trained one model.

Keys as the Hub's model-card metadata names them (``emissions`` in grams, ``source``, ``training_type``,
``geographical_location``, ``hardware_used``), with the market-based figure and the energy beside them.
Every figure is the stored one (tasks compute them), so a model card says what ``run_summary`` says; while
any run's figures are not current the block is refused rather than published half-computed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import yaml

from dashboard.telemetry.models import Gpu, Run, RunGpu
from planner.carbon.reporting import CarbonState, RunReportCarbon, runs_report_carbon
from planner.units import J_PER_KWH

# Run tags that say how the model was trained (the Hub's two training types).
TRAINING_TAGS = {
    "pretraining": "pre-training", "pre-training": "pre-training", "pretrain": "pre-training",
    "from-scratch": "pre-training", "finetune": "fine-tuning", "fine-tune": "fine-tuning",
    "fine-tuning": "fine-tuning", "finetuning": "fine-tuning",
}


class NotReady(Exception):
    """A run's carbon figures are not computed, or not current: the card would be wrong."""


def training_type(runs: Sequence[Run]) -> str | None:
    """From the runs' tags: ``pre-training`` or ``fine-tuning`` (both joined when the runs did both)."""
    kinds = {TRAINING_TAGS[t.name.lower()] for run in runs for t in run.tags.all() if t.name.lower() in TRAINING_TAGS}
    return " and ".join(sorted(kinds, reverse=True)) or None


def hardware_used(runs: Sequence[Run]) -> str:
    """GPU models and counts: "8 x NVIDIA H100 80GB HBM3" (each physical GPU counted once over the runs)."""
    gpus = (RunGpu.objects.filter(run__in=runs, gpu__component=Gpu.Component.GPU)
            .values_list("gpu_id", "gpu__name").distinct())
    counts = Counter(name or "GPU (model not reported)" for _, name in gpus)
    return ", ".join(f"{n} x {name}" for name, n in sorted(counts.items())) or "no GPU measured"


def geographical_location(figures: Sequence[RunReportCarbon]) -> str:
    """The zones and regions the runs drew energy in: "DE (site demo-frankfurt), aws:eu-north-1 (SE-SE3)"."""
    places: dict[str, None] = {}
    for run in figures:
        for p in run.places:
            places[f"{p.where} (site {p.site})" if p.site else p.label] = None
    return ", ".join(places) or "unknown"


def _ready(runs: Sequence[Run], figures: dict[int, RunReportCarbon]) -> list[RunReportCarbon]:
    for run in runs:
        state = figures[run.pk].state
        if state not in (CarbonState.CURRENT, CarbonState.NO_ENERGY):
            raise NotReady(f"the carbon figures of run {run.name!r} are {state.label}; "
                           "try again once they are current (or run `manage.py recompute_carbon`)")
    return [figures[run.pk] for run in runs]


def co2_eq_emissions(runs: Sequence[Run]) -> dict[str, Any]:
    """The block's mapping (raises :class:`NotReady` while any run's figures are not current)."""
    figures = _ready(runs, runs_report_carbon(runs))
    sources = sorted({s for f in figures for s in f.sources})
    block: dict[str, Any] = {
        "emissions": sum(f.emissions_g for f in figures),
        "emissions_market_based": sum(f.market_emissions_g for f in figures),
        "source": "Wattwise: measured device energy (GPU counters, RAPL) x grid carbon intensity"
                  + (f" ({'; '.join(sources)})" if sources else ""),
        "training_type": training_type(runs),
        "geographical_location": geographical_location(figures),
        "hardware_used": hardware_used(runs),
        "energy_kwh": sum(f.energy_j for f in figures) / J_PER_KWH,
    }
    return {key: value for key, value in block.items() if value is not None}


def model_card_yaml(runs: Sequence[Run]) -> str:
    """The YAML to paste into the model card's front matter."""
    return yaml.safe_dump({"co2_eq_emissions": co2_eq_emissions(runs)}, sort_keys=False, allow_unicode=True)
