"""The offsets ledger of a project: what retiring credits for each run would take and cost, and what was
actually retired. Offsets are never subtracted from emissions: they sit next to them, labelled.

Price per credit type: the project's own (with its source and date) or the core library's indicative
default; ``custom`` credits have no default and must be priced first.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from dashboard.projects.models import Project
from dashboard.telemetry.models import Run
from planner.carbon.models import CreditPrice, OffsetPolicy, OffsetRetirement, RunCarbon
from planner.grid_carbon import DEFAULT_PRICES, CreditType, OffsetBalance, OffsetQuote, balance, quote_offsets
from planner.grid_carbon import CreditPrice as CorePrice
from planner.units import J_PER_KWH


def policy_for(project_id: int) -> OffsetPolicy:
    """The project's offset policy; an unsaved default one when it never set one (reads never write:
    the offsets page saves it when someone changes it)."""
    return OffsetPolicy.objects.filter(project_id=project_id).first() or OffsetPolicy(project_id=project_id)


def price_for(project_id: int, credit_type: str) -> CorePrice | None:
    """The project's price for a credit type, else the indicative default, else ``None`` (custom)."""
    kind = CreditType(credit_type)
    own = CreditPrice.objects.filter(project_id=project_id, credit_type=kind.value).first()
    if own is not None:
        return CorePrice(kind, own.price_per_tonne, own.currency, own.source, own.as_of)
    return DEFAULT_PRICES.get(kind)


def prices_table(project_id: int) -> list[dict[str, Any]]:
    """Every credit type with the price in force and whether it is the project's own or a default."""
    rows = []
    for kind in CreditType:
        own = CreditPrice.objects.filter(project_id=project_id, credit_type=kind.value).first()
        price = price_for(project_id, kind.value)
        rows.append({"credit_type": kind.value, "price": price, "own": own is not None})
    return rows


@dataclass(frozen=True)
class RunOffset:
    run: Run
    emissions_g: float  # the figure offset (location- or market-based, as the policy says)
    basis: str
    quote: OffsetQuote | None
    problem: str = ""


def quote_run(run_carbon: RunCarbon, policy: OffsetPolicy) -> RunOffset:
    """What offsetting one run takes, in fractional tonnes: whole credits are rounded on the project total."""
    emissions_g = run_carbon.market_emissions_g if policy.emissions_basis == OffsetPolicy.EmissionsBasis.MARKET else run_carbon.emissions_g
    price = price_for(policy.project_id, policy.credit_type)
    if price is None:
        return RunOffset(run_carbon.run, emissions_g, policy.emissions_basis, None,
                         f"no price set for {policy.credit_type} credits: add one on the offsets page")
    quote = quote_offsets(emissions_g, policy.credit_type, buffer_pct=policy.buffer_pct, price=price)
    return RunOffset(run_carbon.run, emissions_g, policy.emissions_basis, quote)


@dataclass(frozen=True)
class Ledger:
    """A project's offsets: one line per run, the retirements, and the balance netting the two."""

    lines: list[RunOffset]
    retirements: list[OffsetRetirement]
    emissions_g: float
    balance: OffsetBalance
    retired_cost_by_currency: dict[str, float]


def project_ledger(project: Project) -> Ledger:
    """One line per run with stored figures; what is still to retire (net of retirements) and its cost."""
    policy = policy_for(project.pk)
    lines = [
        quote_run(rc, policy)
        for rc in RunCarbon.objects.filter(run__project=project).select_related("run").order_by("run__started_at", "pk")
    ]
    retired = list(OffsetRetirement.objects.filter(project=project).select_related("run"))
    retired_cost: dict[str, float] = {}
    for r in retired:
        retired_cost[r.currency] = retired_cost.get(r.currency, 0.0) + r.tonnes * r.price_per_tonne
    return Ledger(
        lines=lines,
        retirements=retired,
        emissions_g=sum(line.emissions_g for line in lines),
        balance=balance(
            sum(line.quote.tonnes_to_retire for line in lines if line.quote),
            sum(r.tonnes for r in retired),
            price_for(project.pk, policy.credit_type),
            whole_credits=policy.whole_credits,
        ),
        retired_cost_by_currency=retired_cost,
    )


TEXT_COLUMNS = ("run", "price_source", "registry", "reference", "note")


def _safe(row: dict[str, str]) -> dict[str, str]:
    """Run names and references come from users: keep a spreadsheet from reading them as formulas."""
    return {k: ("'" + v if k in TEXT_COLUMNS and v[:1] in ("=", "+", "-", "@") else v) for k, v in row.items()}


CSV_COLUMNS = [
    "kind", "run", "started_utc", "ended_utc", "energy_kwh", "location_emissions_g", "market_emissions_g",
    "offset_basis", "emissions_offset_g", "buffer_pct", "tonnes_to_retire", "credits", "credit_type",
    "price_per_tonne", "currency", "cost", "price_source", "price_as_of", "registry", "reference", "note",
]


def ledger_csv(project: Project) -> str:
    """The ledger as CSV: ``required`` lines per run (never netted), then ``retired`` lines."""
    lines = project_ledger(project).lines
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    carbon = {rc.run_id: rc for rc in RunCarbon.objects.filter(run__project=project)}
    for line in lines:
        rc, q = carbon[line.run.pk], line.quote
        writer.writerow(_safe({
            "kind": "required",
            "run": line.run.name,
            "started_utc": line.run.started_at.isoformat() if line.run.started_at else "",
            "ended_utc": line.run.ended_at.isoformat() if line.run.ended_at else "",
            "energy_kwh": f"{rc.energy_j / J_PER_KWH:.6f}",
            "location_emissions_g": f"{rc.emissions_g:.3f}",
            "market_emissions_g": f"{rc.market_emissions_g:.3f}",
            "offset_basis": line.basis,
            "emissions_offset_g": f"{line.emissions_g:.3f}",
            "buffer_pct": f"{q.buffer_pct:g}" if q else "",
            "tonnes_to_retire": f"{q.tonnes_to_retire:.6f}" if q else "",
            "credits": f"{q.credits:.6f}" if q else "",
            "credit_type": q.credit_type.value if q else "",
            "price_per_tonne": f"{q.price_per_tonne:.2f}" if q else "",
            "currency": q.currency if q else "",
            "cost": f"{q.cost:.2f}" if q else "",
            "price_source": q.price_source if q else "",
            "price_as_of": q.price_as_of.isoformat() if q else "",
            "note": line.problem or "emissions are reported gross; this is what offsetting them would take",
        }))
    for r in OffsetRetirement.objects.filter(project=project).select_related("run"):
        writer.writerow(_safe({
            "kind": "retired",
            "run": r.run.name if r.run else "",
            "tonnes_to_retire": f"{r.tonnes:.6f}",
            "credits": f"{r.tonnes:.6f}",
            "credit_type": r.credit_type,
            "price_per_tonne": f"{r.price_per_tonne:.2f}",
            "currency": r.currency,
            "cost": f"{r.tonnes * r.price_per_tonne:.2f}",
            "price_as_of": r.retired_on.isoformat(),
            "registry": r.registry,
            "reference": r.reference,
        }))
    return out.getvalue()
