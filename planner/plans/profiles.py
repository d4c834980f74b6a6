"""Stage profiles as plain functions: who may see them, and storing them from an upload, the shipped
sample, or an agent's signed ``stage_profile`` message.

Every path validates the CSV with :func:`planner.perseus.parse_profile` before anything is written,
so a bad profile is refused with a message that names the line, column, stage or instruction at fault
and leaves nothing behind. A profile's content digest is unique in its project: storing the same
profile again returns the one already stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.wire import MAX_NAME_CHARS, WireError
from dashboard.projects.models import Project
from dashboard.telemetry.ingest import Outcome, Rejected, authenticate, ms_to_datetime, record_rejection
from dashboard.telemetry.models import Node, Run
from planner import perseus
from planner.perseus.profile import MAX_PROFILE_BYTES, MAX_PROFILE_ROWS
from planner.plans.models import StageProfile

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
SAMPLE_FILE = "gpt3-175b+a100_sxm_bf16.csv"
SAMPLE_NAME = "GPT-3 175B · A100 SXM · 8 stages (sample)"
SAMPLE_GPU = "NVIDIA A100 SXM"

# Blocking power Perseus measured (a GPU waiting on communication), used for every number in the paper.
P_BLOCKING_BY_GPU: tuple[tuple[str, float], ...] = (("A100", 83.64), ("A40", 70.38))
DEFAULT_P_BLOCKING_W = 83.64
MAX_P_BLOCKING_W = 10_000.0
"""Exclusive upper bound on P_blocking, as the agent checks it (a GPU draws far less)."""

# Web uploads: the core's own limits (16 MiB, 200,000 rows). Agent messages are also capped by the wire's
# 4 MiB body limit.
MAX_UPLOAD_BYTES = MAX_PROFILE_BYTES
MAX_UPLOAD_ROWS = MAX_PROFILE_ROWS


def suggested_p_blocking(gpu_name: str, stated_w: float | None = None) -> tuple[float, str]:
    """The P_blocking to offer by default, and where it comes from."""
    if stated_w is not None:
        return stated_w, "stated with the profile"
    upper = gpu_name.upper()
    for marker, value in P_BLOCKING_BY_GPU:
        if marker in upper:
            return value, f"Perseus' measured {marker} value"
    return DEFAULT_P_BLOCKING_W, "Perseus' A100 value; measure your GPU's power while it waits on communication"


@dataclass(frozen=True)
class Stored:
    profile: StageProfile
    created: bool


def _validate(data: str | bytes, *, max_bytes: int, max_rows: int) -> tuple[perseus.Profile, str]:
    """Parse and validate; return the profile and its text. Raises ``perseus.PlannerError``."""
    parsed = perseus.parse_profile(data, max_bytes=max_bytes, max_rows=max_rows)
    text = data if isinstance(data, str) else data.decode("utf-8-sig")
    return parsed, text.removeprefix("\ufeff")


def _row_count(text: str) -> int:
    return max(0, sum(1 for line in text.splitlines() if line.strip()) - 1)


def _store(project: Project, parsed: perseus.Profile, text: str, **fields: Any) -> Stored:
    digest = parsed.digest()
    existing = StageProfile.objects.filter(project=project, digest=digest).first()
    if existing is not None:
        return Stored(existing, False)
    try:
        with transaction.atomic():
            profile = StageProfile.objects.create(
                project=project,
                csv_text=text,
                digest=digest,
                size_bytes=len(text.encode()),
                num_stages=parsed.num_stages,
                num_rows=_row_count(text),
                frequencies_mhz=list(parsed.frequencies_mhz),
                **fields,
            )
    except IntegrityError:  # stored meanwhile by a concurrent request or worker
        return Stored(StageProfile.objects.get(project=project, digest=digest), False)
    return Stored(profile, True)


def store_upload(
    project: Project,
    data: bytes,
    *,
    name: str,
    user: Any = None,
    gpu_name: str = "",
    p_blocking_w: float | None = None,
) -> Stored:
    """Validate and store an uploaded profile. Raises ``perseus.PlannerError``; nothing is stored then."""
    parsed, text = _validate(data, max_bytes=MAX_UPLOAD_BYTES, max_rows=MAX_UPLOAD_ROWS)
    return _store(
        project, parsed, text, name=name[:MAX_NAME_CHARS] or "profile", source=StageProfile.UPLOAD,
        created_by=user if getattr(user, "is_authenticated", False) else None, gpu_name=gpu_name[:200],
        p_blocking_w=p_blocking_w,
    )


def sample_csv() -> bytes:
    return (SAMPLES_DIR / SAMPLE_FILE).read_bytes()


def store_sample(project: Project, user: Any = None) -> Stored:
    """Store the shipped GPT-3 175B sample in ``project`` (once)."""
    parsed, text = _validate(sample_csv(), max_bytes=MAX_UPLOAD_BYTES, max_rows=MAX_UPLOAD_ROWS)
    return _store(
        project, parsed, text, name=SAMPLE_NAME, source=StageProfile.SAMPLE, gpu_name=SAMPLE_GPU,
        p_blocking_w=DEFAULT_P_BLOCKING_W, created_by=user if getattr(user, "is_authenticated", False) else None,
    )


# --- agents: the signed ``stage_profile`` message ---------------------------------------------------


def _text(payload: dict[str, Any], key: str, *, required: bool, limit: int = MAX_NAME_CHARS) -> str | None:
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise WireError(f"{key}: expected a non-empty string of at most {limit} characters")
    return value.strip()


def _p_blocking(payload: dict[str, Any]) -> float | None:
    value = payload.get("p_blocking_w")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WireError(f"p_blocking_w: expected a number of watts or null, got {value!r}")
    if not 0 <= value < MAX_P_BLOCKING_W:
        raise WireError(f"p_blocking_w: {value} W is outside 0–{MAX_P_BLOCKING_W:,.0f} W")
    return float(value)


def _recorded_ms(payload: dict[str, Any]) -> int:
    value = payload.get("recorded_ms")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise WireError(f"recorded_ms: expected a Unix time in milliseconds, got {value!r}")
    limit_ms = (timezone.now() + timedelta(seconds=settings.WATTWISE_MAX_FUTURE_S)).timestamp() * 1000
    if value > limit_ms:
        raise Rejected(f"recorded_ms lies in the future ({ms_to_datetime(value).isoformat()}): check the node's clock")
    return value


def receive_stage_profile(envelope: Any) -> Outcome:
    """Store a profile an agent recorded, in its node's project, exactly once; or record why not.

    Outcomes: ``stored``; ``duplicate`` (the same profile is already stored in the project, e.g. the
    message was delivered twice); ``rejected`` (unknown node, bad signature, malformed payload or
    profile — recorded in ``Rejection`` with the reason, nothing else written).
    """
    try:
        node, payload, body_digest = authenticate(envelope, "stage_profile")
        name = _text(payload, "name", required=True)
        csv_text = payload.get("csv")
        if not isinstance(csv_text, str) or not csv_text.strip():
            raise WireError("csv: expected the profile as CSV text")
        gpu_name = _text(payload, "gpu_name", required=False) or ""
        run_name = _text(payload, "run", required=False) or ""
        p_blocking_w = _p_blocking(payload)
        recorded_ms = _recorded_ms(payload)
        try:
            parsed, text = _validate(csv_text, max_bytes=MAX_UPLOAD_BYTES, max_rows=MAX_UPLOAD_ROWS)
        except perseus.PlannerError as exc:
            raise Rejected(str(exc)) from None
        return _store_from_agent(node, parsed, text, name=name or "profile", gpu_name=gpu_name, run_name=run_name,
                                 p_blocking_w=p_blocking_w, recorded_ms=recorded_ms, body_digest=body_digest)
    except (Rejected, WireError) as exc:
        return record_rejection("stage_profile", envelope, str(exc))


def _store_from_agent(
    node: Node, parsed: perseus.Profile, text: str, *, name: str, gpu_name: str, run_name: str,
    p_blocking_w: float | None, recorded_ms: int, body_digest: str,
) -> Outcome:
    project = node.project
    run = Run.objects.filter(project=project, name=run_name).first() if run_name else None
    stored = _store(
        project, parsed, text, name=name, source=StageProfile.AGENT, gpu_name=gpu_name, p_blocking_w=p_blocking_w,
        node=node, run=run, run_name=run_name, body_sha256=body_digest, recorded_at=ms_to_datetime(recorded_ms),
    )
    if not stored.created:
        return Outcome("duplicate", f"profile already stored as {stored.profile.name!r} (#{stored.profile.pk})")
    return Outcome("stored", f"profile {name!r} ({parsed.num_stages} stages) from {node.name}")
