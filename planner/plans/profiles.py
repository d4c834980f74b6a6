"""Stage profiles as plain functions: who may see them, and storing them from an upload, the shipped
sample, or an agent's signed ``stage_profile`` message.

Every path validates the CSV with :func:`planner.perseus.parse_profile` before anything is written,
so a bad profile is refused with a message that names the line, column, stage or instruction at fault
and leaves nothing behind. A profile's content digest is unique in its project: storing the same
profile again returns the one already stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import DataError, IntegrityError, transaction

from dashboard.projects.models import Project, Visitor, signed_in
from dashboard.telemetry.admission import (
    Outcome,
    Rejected,
    Status,
    authenticate,
    concerning,
    out_of_range,
    record_rejection,
    refuse_future,
)
from dashboard.telemetry.models import Node, Rejection, Run
from dashboard.telemetry.windows import ms_to_datetime
from planner import perseus
from planner.perseus.profile import MAX_PROFILE_BYTES, MAX_PROFILE_ROWS
from planner.plans.models import StageProfile
from wattwise_agent import wire
from wattwise_agent.wire import KIND_STAGE_PROFILE, MAX_NAME_CHARS, WireError

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
SAMPLE_FILE = "gpt3-175b+a100_sxm_bf16.csv"
SAMPLE_NAME = "GPT-3 175B · A100 SXM · 8 stages (sample)"
SAMPLE_GPU = "NVIDIA A100 SXM"

# Blocking power Perseus measured (a GPU waiting on communication), used for every number in the paper.
P_BLOCKING_BY_GPU: tuple[tuple[str, float], ...] = (("A100", 83.64), ("A40", 70.38))
DEFAULT_P_BLOCKING_W = 83.64
MAX_P_BLOCKING_W = wire.MAX_P_BLOCKING_W
"""Exclusive upper bound on P_blocking, as the wire format declares it (a GPU draws far less)."""

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
    user: Visitor | None = None,
    gpu_name: str = "",
    p_blocking_w: float | None = None,
) -> Stored:
    """Validate and store an uploaded profile. Raises ``perseus.PlannerError``; nothing is stored then."""
    parsed, text = _validate(data, max_bytes=MAX_UPLOAD_BYTES, max_rows=MAX_UPLOAD_ROWS)
    return _store(
        project, parsed, text, name=name[:MAX_NAME_CHARS] or "profile", source=StageProfile.Source.UPLOAD,
        created_by=signed_in(user), gpu_name=gpu_name[:200],
        p_blocking_w=p_blocking_w,
    )


def sample_csv() -> bytes:
    return (SAMPLES_DIR / SAMPLE_FILE).read_bytes()


def store_sample(project: Project, user: Visitor | None = None) -> Stored:
    """Store the shipped GPT-3 175B sample in ``project`` (once)."""
    parsed, text = _validate(sample_csv(), max_bytes=MAX_UPLOAD_BYTES, max_rows=MAX_UPLOAD_ROWS)
    return _store(
        project, parsed, text, name=SAMPLE_NAME, source=StageProfile.Source.SAMPLE, gpu_name=SAMPLE_GPU,
        p_blocking_w=DEFAULT_P_BLOCKING_W, created_by=signed_in(user),
    )


# --- agents: the signed ``stage_profile`` message ---------------------------------------------------


def receive_stage_profile(envelope: Any) -> Outcome:
    """Store a profile an agent recorded, in its node's project, exactly once; or record why not.

    The payload is read with the wire's ``StageProfile`` model; on top of it, only what the app knows:
    the node and its signature, ``recorded_ms`` not in the future, and the CSV parsed by the planner.
    Outcomes: ``stored``; ``duplicate`` (the same profile is already stored in the project, e.g. the
    message was delivered twice); ``rejected`` (unknown node, bad signature, malformed payload or
    profile — recorded in ``Rejection`` with the reason, nothing else written).
    """
    try:
        node, payload, body_digest = authenticate(envelope, KIND_STAGE_PROFILE)
        with concerning(node):
            message = wire.parse(wire.StageProfile, payload)
            refuse_future(message.recorded_ms, "recorded_ms lies")
            try:
                parsed, text = _validate(message.csv, max_bytes=MAX_UPLOAD_BYTES, max_rows=MAX_UPLOAD_ROWS)
            except perseus.PlannerError as exc:
                raise Rejected(str(exc), Rejection.Code.PROFILE) from None
        return _store_from_agent(node, parsed, text, name=message.name.strip(),
                                 gpu_name=(message.gpu_name or "").strip(), run_name=(message.run or "").strip(),
                                 p_blocking_w=message.p_blocking_w, recorded_ms=message.recorded_ms,
                                 body_digest=body_digest)
    except (Rejected, WireError) as exc:
        return record_rejection(KIND_STAGE_PROFILE, envelope, exc)
    except DataError as exc:
        return record_rejection(KIND_STAGE_PROFILE, envelope, out_of_range(exc))


def _store_from_agent(
    node: Node, parsed: perseus.Profile, text: str, *, name: str, gpu_name: str, run_name: str,
    p_blocking_w: float | None, recorded_ms: int, body_digest: str,
) -> Outcome:
    project = node.project
    run = Run.objects.filter(project=project, name=run_name).first() if run_name else None
    stored = _store(
        project, parsed, text, name=name, source=StageProfile.Source.AGENT, gpu_name=gpu_name, p_blocking_w=p_blocking_w,
        node=node, run=run, run_name=run_name, body_sha256=body_digest, recorded_at=ms_to_datetime(recorded_ms),
    )
    if not stored.created:
        return Outcome(Status.DUPLICATE, f"profile already stored as {stored.profile.name!r} (#{stored.profile.pk})")
    return Outcome(Status.STORED, f"profile {name!r} ({parsed.num_stages} stages) from {node.name}")
