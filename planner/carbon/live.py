"""Live intensity: poll the configured providers (Celery beat) and store what they answer.

Providers are tried in order for each zone — Electricity Maps, then WattTime (zones mapped to a
WattTime region), then UK Carbon Intensity (GB zones) — once for recent history and once for the
forecast. A provider that times out, refuses the credentials or sends a malformed body is recorded in
:class:`ProviderStatus` and the next one is tried; when none answers, accounting simply uses the next
step of the fallback chain (stored data, then yearly figures). Nothing here runs inside ingest, and a
poll never raises: a broken provider can never stop batches from being stored.

Providers without credentials are off and send nothing. Secrets are read from settings and never
logged: provider errors are built to be safe to show.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dashboard.telemetry.models import RunNode
from planner.carbon.models import IntensityRow, ProjectCarbon, ProviderStatus, Site
from planner.carbon.recompute import mark_stale_for_intensity, queue_recompute
from planner.carbon.stored import canonical_zone, upsert_records
from planner.grid_carbon import IntensityRecord
from planner.grid_carbon.providers import (
    ElectricityMapsProvider,
    IntensityProvider,
    ProviderError,
    ProviderUnsupportedZone,
    UKCarbonIntensityProvider,
    WattTimeProvider,
)

log = logging.getLogger(__name__)


def configured_providers() -> list[IntensityProvider]:
    """The providers in fallback order, built from settings (disabled ones included, for the status page)."""
    timeout_s = settings.WATTWISE_CARBON_PROVIDER_TIMEOUT_S
    return [
        ElectricityMapsProvider(
            settings.WATTWISE_ELECTRICITYMAPS_TOKEN,
            base_url=settings.WATTWISE_ELECTRICITYMAPS_URL,
            timeout_s=timeout_s,
        ),
        WattTimeProvider(
            settings.WATTWISE_WATTTIME_USERNAME,
            settings.WATTWISE_WATTTIME_PASSWORD,
            base_url=settings.WATTWISE_WATTTIME_URL,
            timeout_s=timeout_s,
            signal_type=settings.WATTWISE_WATTTIME_SIGNAL,
            region_for_zone=watttime_regions(settings.WATTWISE_WATTTIME_REGIONS),
        ),
        UKCarbonIntensityProvider(
            base_url=settings.WATTWISE_UK_CARBON_INTENSITY_URL,
            timeout_s=timeout_s,
            enabled=settings.WATTWISE_UK_CARBON_INTENSITY,
        ),
    ]


def watttime_regions(pairs: Iterable[str]) -> dict[str, str]:
    """``["US-CAL-CISO=CAISO_NORTH"]`` → ``{"US-CAL-CISO": "CAISO_NORTH"}`` (malformed pairs skipped)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        zone, sep, region = pair.partition("=")
        if sep and zone.strip() and region.strip():
            mapping[canonical_zone(zone.strip())] = region.strip()
    return mapping


def _covers(provider: IntensityProvider, zone: str) -> bool:
    """Skip calls that cannot succeed (they would only add noise to the status page)."""
    if isinstance(provider, WattTimeProvider):
        return zone in provider.region_for_zone
    if isinstance(provider, UKCarbonIntensityProvider):
        return zone == "GB" or zone.startswith("GB-CI-")
    return True


def zones_to_poll() -> list[str]:
    """The configured zones, else every zone in use: sites, project defaults, agent flags of runs
    created in the last 30 days."""
    configured = [canonical_zone(z) for z in settings.WATTWISE_CARBON_POLL_ZONES]
    if configured:
        return sorted(set(configured))
    wanted = set(Site.objects.values_list("where", flat=True))
    wanted |= set(ProjectCarbon.objects.exclude(default_where="").values_list("default_where", flat=True))
    since = timezone.now() - timedelta(days=30)
    for zone, region in RunNode.objects.filter(run__created_at__gte=since).values_list("zone", "region").distinct():
        wanted.add(zone or region)
    return sorted({canonical_zone(w) for w in wanted if w} - {""})


@dataclass
class PollReport:
    stored: dict[str, int] = field(default_factory=dict)  # "zone kind" → records
    errors: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)  # "zone kind" no provider could answer


def poll(zones: Iterable[str] | None = None, providers: list[IntensityProvider] | None = None) -> PollReport:
    """Fetch history and forecast for each zone down the provider chain; store; never raise."""
    providers = providers if providers is not None else configured_providers()
    enabled = [p for p in providers if p.enabled]
    report = PollReport()
    statuses = {p.name: _status(p) for p in providers}
    if not enabled:
        return report
    for zone in zones if zones is not None else zones_to_poll():
        for kind in ("history", "forecast"):
            answered = False
            for provider in enabled:
                if not _covers(provider, zone):
                    continue
                status = statuses[provider.name]
                status.last_attempt_at = timezone.now()
                try:
                    records = _fetch(provider, zone, kind)
                except ProviderUnsupportedZone:
                    continue
                except ProviderError as exc:
                    # str(exc) never holds credentials (providers guarantee it).
                    message = f"{zone} {kind}: {exc}"
                    report.errors.append(message)
                    status.last_error, status.last_error_at = message[:2000], timezone.now()
                    log.warning("live intensity: %s; trying the next provider", message)
                    continue
                except Exception:  # a bug in a client must not stop the poll of other zones
                    log.exception("live intensity: %s failed unexpectedly for %s %s", provider.name, zone, kind)
                    status.last_error = f"{zone} {kind}: unexpected error (see the worker log)"
                    status.last_error_at = timezone.now()
                    continue
                stored = _store(records)
                status.last_success_at = timezone.now()
                status.records_stored += stored
                report.stored[f"{zone} {kind}"] = stored
                answered = True
                break
            if not answered:
                report.unanswered.append(f"{zone} {kind}")
    for status in statuses.values():
        status.save()
    return report


def _fetch(provider: IntensityProvider, zone: str, kind: str) -> list[IntensityRecord]:
    if kind == "history":
        return provider.history(zone)
    return provider.forecast(zone, 48)


def _store(records: list[IntensityRecord]) -> int:
    if not records:
        return 0
    with transaction.atomic():
        counts = upsert_records(records, origin=IntensityRow.Origin.LIVE)
        if counts.changed:
            # New or corrected values for hours runs already used: their stored figures must follow.
            zones = {r.zone for r in records}
            run_ids = mark_stale_for_intensity(
                zones, min(r.start_utc for r in records), max(r.start_utc for r in records)
            )
            queue_recompute(run_ids)
    return counts.changed


def _status(provider: IntensityProvider) -> ProviderStatus:
    status, _ = ProviderStatus.objects.get_or_create(provider=provider.name)
    status.enabled = provider.enabled
    return status


def provider_statuses() -> list[ProviderStatus]:
    """For the data page: every provider, configured or not."""
    known = {s.provider: s for s in ProviderStatus.objects.all()}
    out = []
    for provider in configured_providers():
        status = known.get(provider.name) or ProviderStatus(provider=provider.name)
        status.enabled = provider.enabled
        out.append(status)
    return out
