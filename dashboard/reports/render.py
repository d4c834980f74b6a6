"""A period report as CSV, Markdown, HTML (the page's template, which prints cleanly) and PDF (that HTML
printed by Chromium). The CSV keeps every figure at full precision, so its rows add up to its totals."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string

from dashboard.reports.period import PeriodReport
from dashboard.telemetry.work import Family, PerUnit
from dashboard.web.templatetags.units import si
from planner.units import J_PER_KWH

CSV_HEADER = ["section", "name", "energy_kwh", "facility_energy_kwh", "emissions_g", "market_emissions_g", "pue",
              "detail", "tokens", "samples", "steps", "energy_j_per_unit", "emissions_g_per_unit", "unit"]


def _work_columns(counts: Any, per: Any) -> list[Any]:
    """tokens, samples, steps, then energy and emissions per the finest of them (blank where unknown)."""
    return [*(counts.get(u) or "" for u in ("tokens", "samples", "steps")),
            *((per.energy_j, "" if per.emissions_g is None else per.emissions_g, per.unit) if per else ("", "", ""))]


def _csv_rows(report: PeriodReport) -> Iterator[list[Any]]:
    period = report.period
    yield ["report", report.project.name, "", "", "", "", "", f"{period.label} ({period.first} to {period.last}, UTC)"]
    for r in report.runs:
        c = r.carbon
        yield ["run", r.name, r.energy_kwh, c.facility_energy_kwh, c.emissions_g, c.market_emissions_g,
               c.pue if c.pue is not None else "", f"carbon {c.state.label}; tags: {' '.join(r.tags)}",
               *_work_columns(r.work.counts, r.per_unit)]
    yield ["total", f"{len(report.runs)} runs", report.energy_kwh, report.facility_energy_kwh, report.emissions_g,
           report.market_emissions_g, report.pue if report.pue is not None else "",
           f"{len(report.not_current)} runs with figures not current"]
    for f in report.families:
        unit = next((u for u in ("tokens", "samples", "steps") if f.counts.get(u)), None)
        per = (f.energy_per(unit), f.emissions_per(unit)) if unit else (None, None)
        yield ["tag", f.tag, f.energy_j / J_PER_KWH, "", "" if f.emissions_g is None else f.emissions_g, "", "",
               f"{f.runs} runs", *(f.counts.get(u) or "" for u in ("tokens", "samples", "steps")),
               "" if per[0] is None else per[0], "" if per[1] is None else per[1], unit or ""]
    for s in report.by_gpu_model:
        yield ["gpu_model", s.label, s.energy_kwh, "", "", "", "", f"{s.devices} devices"]
    for s in report.by_site:
        yield ["site", s.label, s.energy_kwh, "", s.emissions_g, s.market_emissions_g, "", ""]
    for key, kwh in report.market_cover_kwh.items():
        yield ["market_cover", key.removesuffix("_kwh"), "", kwh, "", "", "", "facility kWh"]
    for i in report.instruments:
        amount = f"{i.share_pct:g}% share" if i.share_pct is not None else f"{i.energy_kwh:g} kWh"
        yield ["instrument", f"{i.kind} {i.label}".strip(), "", "", "", "", "",
               f"{amount}, vintage {i.vintage_year}, {i.market_boundary}, {i.emission_factor_g_per_kwh:g} g/kWh"]
    for o in report.retirements:
        yield ["offset_retired", o.retired_on.isoformat(), "", "", "", "", "",
               f"{o.tonnes:g} t {o.credit_type}; {o.registry} {o.reference}".strip()]
    for src in report.sources:
        yield ["source", src.source, "", "", "", "", "", src.licence]


def to_csv(report: PeriodReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(_csv_rows(report))
    return out.getvalue()


def _kwh(energy_j: float) -> str:
    return f"{energy_j / J_PER_KWH:,.3f}"


def _g(grams: float | None) -> str:
    return "–" if grams is None else f"{grams:,.1f}"


def _per(per: PerUnit | None) -> str:
    if per is None:
        return "–"
    unit = per.unit.removesuffix("s")
    grams = f", {si(per.emissions_g, 'g')} CO2e" if per.emissions_g is not None else ""
    return f"{si(per.energy_j, 'J')}/{unit}{grams}"


def _family_per(family: Family) -> str:
    unit = next((u for u in ("tokens", "samples", "steps") if family.counts.get(u)), None)
    if unit is None:
        return "–"
    grams = family.emissions_per(unit)
    return (f"{si(family.energy_per(unit), 'J')}/{unit.removesuffix('s')}"
            + (f", {si(grams, 'g')} CO2e" if grams is not None else ""))


def to_markdown(report: PeriodReport) -> str:
    p, lines = report.period, []
    lines += [f"# {report.project.name}: energy and emissions, {p.label}", "",
              f"Runs started from {p.first} to {p.last} (UTC): {len(report.runs)}.", "",
              "| figure | value |", "|---|---|",
              f"| energy | {_kwh(report.energy_j)} kWh |",
              f"| facility energy (× PUE) | {report.facility_energy_kwh:,.3f} kWh |",
              f"| PUE | {report.pue:.3f} |" if report.pue is not None else "| PUE | – |",
              f"| emissions, location-based | {_g(report.emissions_g)} g CO2e |",
              f"| emissions, market-based | {_g(report.market_emissions_g)} g CO2e |",
              f"| offsets retired in the period | {report.retired_t:g} t CO2e |", ""]
    if report.not_current:
        lines += ["Figures not current (being computed or to be recomputed): "
                  + ", ".join(r.name for r in report.not_current) + ".", ""]
    lines += ["## Biggest runs", "", "| run | energy kWh | emissions g | market-based g | per unit of work | tags |",
              "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {r.name} | {_kwh(r.energy_j)} | {_g(r.carbon.emissions_g)} | {_g(r.carbon.market_emissions_g)} | "
              f"{_per(r.per_unit)} | {' '.join(r.tags)} |" for r in report.biggest]
    lines += ["", "## By tag", "", "| tag | runs | energy kWh | emissions g | per unit of work |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {f.tag} | {f.runs} | {_kwh(f.energy_j)} | {_g(f.emissions_g)} | {_family_per(f)} |"
              for f in report.families]
    lines += ["", "## Energy by GPU model", "", "| device | count | energy kWh |", "|---|---:|---:|"]
    lines += [f"| {s.label} | {s.devices} | {_kwh(s.energy_j)} |" for s in report.by_gpu_model]
    lines += ["", "## Energy by site", "", "| site | energy kWh | emissions g | market-based g |", "|---|---:|---:|---:|"]
    lines += [f"| {s.label} | {_kwh(s.energy_j)} | {_g(s.emissions_g)} | {_g(s.market_emissions_g)} |"
              for s in report.by_site]
    lines += ["", "## Market-based instruments", ""]
    cover = report.market_cover_kwh
    lines += [f"Facility energy covered by certificates {cover.get('certificate_kwh', 0.0):,.3f} kWh, by PPAs "
              f"{cover.get('ppa_kwh', 0.0):,.3f} kWh, by neither {cover.get('uncovered_kwh', 0.0):,.3f} kWh.", ""]
    lines += [f"- {i.kind} {i.label}: vintage {i.vintage_year}, {i.market_boundary}, "
              f"{i.emission_factor_g_per_kwh:g} g/kWh" for i in report.instruments] or ["- none held for the period"]
    lines += ["", "## Offsets retired", ""]
    lines += [f"- {o.retired_on}: {o.tonnes:g} t {o.credit_type} {o.registry} {o.reference}".rstrip()
              for o in report.retirements] or ["- none"]
    lines += ["", "## Methodology and data sources", "", METHODOLOGY, "", "| source | licence |", "|---|---|"]
    lines += [f"| {s.source} | {s.licence} |" for s in report.sources]
    return "\n".join(lines) + "\n"


METHODOLOGY = (
    "Energy is what each device's counter measured over the run (GPUs through NVML, CPU packages and DRAM through "
    "RAPL), each GPU counted once however many processes read it. Facility energy is that energy times the PUE of "
    "the node's site (or the project default). Location-based emissions multiply each node-hour's facility energy "
    "by its grid zone's average intensity for that hour, falling back to the zone's, country's or world's yearly "
    "figure where no hourly value is stored; market-based emissions apply the project's certificates, PPAs, "
    "supplier factor and residual mix (GHG Protocol Scope 2 guidance). Offsets are a separate ledger and are never "
    "subtracted from emissions. A run belongs to the period it started in."
)


def to_html(report: PeriodReport, request: HttpRequest | None = None, **context: Any) -> str:
    """The report page; without a request (a command) it has no navigation and prints alone."""
    return render_to_string("reports/period.html", {"report": report, "methodology": METHODOLOGY,
                                                    "work_units": ("tokens", "samples", "steps"), **context},
                            request=request)


class PdfUnavailable(RuntimeError):
    """Chromium (through Playwright) is needed to print a report to PDF."""


def to_pdf(html: str, chromium: str = "/usr/bin/chromium") -> bytes:
    """``html`` (a whole page, its styles inline) printed to A4 by headless Chromium."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise PdfUnavailable("printing to PDF needs Playwright (pip install playwright) and Chromium") from None
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.set_content(html, wait_until="load")
                page.emulate_media(media="print")
                return page.pdf(format="A4", print_background=True, margin={"top": "15mm", "bottom": "15mm",
                                                                             "left": "12mm", "right": "12mm"})
            finally:
                browser.close()
    except Error as error:
        raise PdfUnavailable(f"Chromium could not print the report: {error}") from None


def as_json(report: PeriodReport) -> dict[str, Any]:
    """What the API answers: the totals, every run's figures, the breakdowns and the sources."""
    p = report.period
    return {
        "project": report.project.name, "period": p.label, "first_day": p.first.isoformat(),
        "last_day": p.last.isoformat(),
        "energy_kwh": report.energy_kwh, "facility_energy_kwh": report.facility_energy_kwh, "pue": report.pue,
        "emissions_g": report.emissions_g, "market_emissions_g": report.market_emissions_g,
        "market_cover_kwh": report.market_cover_kwh, "offsets_retired_t": report.retired_t,
        "runs": [{"id": r.pk, "name": r.name, "tags": list(r.tags), "gpus": r.gpus, "energy_kwh": r.energy_kwh,
                  "emissions_g": r.carbon.emissions_g, "market_emissions_g": r.carbon.market_emissions_g,
                  "carbon_status": r.carbon.state.value, "work": dict(r.work.counts),
                  "energy_j_per_unit": r.per_unit.energy_j if r.per_unit else None,
                  "emissions_g_per_unit": r.per_unit.emissions_g if r.per_unit else None,
                  "unit": r.per_unit.unit if r.per_unit else None} for r in report.runs],
        "by_tag": [{"tag": f.tag, "runs": f.runs, "energy_kwh": f.energy_j / J_PER_KWH, "emissions_g": f.emissions_g,
                    "work": dict(f.counts), "energy_j_per": {u: f.energy_per(u) for u in f.counts},
                    "emissions_g_per": {u: f.emissions_per(u) for u in f.counts}} for f in report.families],
        "by_gpu_model": [{"device": s.label, "count": s.devices, "energy_kwh": s.energy_kwh} for s in report.by_gpu_model],
        "by_site": [{"site": s.label, "energy_kwh": s.energy_kwh, "emissions_g": s.emissions_g,
                     "market_emissions_g": s.market_emissions_g} for s in report.by_site],
        "sources": [{"source": s.source, "licence": s.licence} for s in report.sources],
    }
