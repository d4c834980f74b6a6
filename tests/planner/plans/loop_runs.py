"""Runs of the plan client's loop as the server stores them: ``plan`` and ``iteration`` markers (the issue 12
contract's fields) sent through the real ingest path in 5 s batches of one node, beside its GPUs' samples.

``iteration_events`` builds the markers from per-rank iteration times and energies, so tests can compute the
expected figures by hand from the same lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run
from tests.factories import T0_MS, RegisteredNode, batch_payload, envelope, gpu_entry

STEP_MS = 200  # one step's markers every 200 ms: plan markers at its start, iteration markers 100 ms later
WINDOW_MS = 5_000


def plan_fields(frontier_id: int, point: int, *, predicted_time_s: float, predicted_energy_j: float,
                baseline_time_s: float, baseline_energy_j: float, straggler_time_s: float = 0.0,
                reason: str = "start", baseline_run: str = "loop-baseline", dry_run: int = 0) -> dict[str, Any]:
    return {"frontier_id": frontier_id, "point": point, "straggler_time_s": straggler_time_s, "reason": reason,
            "predicted_time_s": predicted_time_s, "predicted_energy_j": predicted_energy_j,
            "baseline_time_s": baseline_time_s, "baseline_energy_j": baseline_energy_j, "dry_run": dry_run,
            "baseline_run": baseline_run}


def iteration_events(
    times_s: Sequence[Sequence[float]], energies_j: Sequence[Sequence[float]] | None = None, *,
    plans: Mapping[tuple[int, int], dict[str, Any]] | None = None, t0_ms: int = T0_MS,
) -> list[dict[str, Any]]:
    """Markers of ranks ``0..len(times_s)-1``: rank r's step s took ``times_s[r][s]`` s and
    ``energies_j[r][s]`` J; ``plans[(rank, step)]``: a plan marker's fields, sent just before that step."""
    events = []
    for step in range(len(times_s[0])):
        t_ms = t0_ms + STEP_MS * step
        for rank in range(len(times_s)):
            if plans and (rank, step) in plans:
                events.append({"t_ms": t_ms, "kind": "plan", "rank": rank, **plans[(rank, step)]})
        for rank, row in enumerate(times_s):
            fields: dict[str, Any] = {"rank": rank, "step": step, "time_s": row[step], "wait_s": 0.0}
            if energies_j is not None:
                fields["energy_j"] = energies_j[rank][step]
            events.append({"t_ms": t_ms + STEP_MS // 2, "kind": "iteration", **fields})
    return events


def store_run(node: RegisteredNode, run: str, events: Sequence[dict[str, Any]], *, gpus: int = 2) -> Run:
    """Send ``events`` (with samples of ``gpus`` GPUs, 100 ms apart) in consecutive 5 s batches of one stream."""
    end = max(e["t_ms"] for e in events)
    for seq in range((end - T0_MS) // WINDOW_MS + 1):
        store_window(node, run, seq, events, gpus=gpus)
    return Run.objects.get(name=run, project__name=node.project)


def store_window(node: RegisteredNode, run: str, seq: int, events: Sequence[dict[str, Any]], *, gpus: int = 2) -> None:
    """Batch ``seq`` of the run's stream: its 5 s of samples, and those of ``events`` that fall in it."""
    t0 = T0_MS
    start = t0 + seq * WINDOW_MS
    t_ms = list(range(start, start + WINDOW_MS, 100))
    entries = []
    for gpu in range(gpus):
        energy = [1_000_000 + 30_000 * ((t - t0) // 100) for t in t_ms]
        prev = (start - 100, energy[0] - 30_000) if seq else None
        entries.append(gpu_entry(f"GPU-{run}-{gpu}", t_ms, energy, index=gpu, prev=prev))
    inside = [e for e in events if start <= e["t_ms"] <= t_ms[-1]]
    payload = batch_payload(entries, run=run, seq=seq, stream=f"{run}/s", events=inside)
    outcome = ingest.ingest_batch(envelope(node, payload))
    assert outcome.status == "stored", outcome


def close_stream(node: RegisteredNode, run: str, last_seq: int, *, gpus: int = 2) -> Run:
    """Close the run's one stream after batch ``last_seq``: the run is finished."""
    payload = {"run": run, "stream": f"{run}/s", "ended_ms": T0_MS + (last_seq + 1) * WINDOW_MS,
               "last_seq": last_seq, "samples_sent": (last_seq + 1) * gpus * (WINDOW_MS // 100)}
    outcome = ingest.close_run(envelope(node, payload, kind="close_run"))
    assert outcome.status == "closed", outcome
    return Run.objects.get(name=run, project__name=node.project)
