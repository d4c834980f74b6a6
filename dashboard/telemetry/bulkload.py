"""The bulk path: whole runs written at fleet scale, stored exactly as ingest would have stored them.

``dashboard.telemetry.ingest`` stores one node's window per batch in a handful of statements: the right shape for
live agents, but a day of a 64-GPU fleet (55 million samples, 1.1 million windows) would take hours that
way. ``load_run`` writes the same rows from arrays, a chunk of time at a time, with PostgreSQL
``COPY … FROM STDIN (FORMAT BINARY)`` (plain ``executemany`` on SQLite), so benchmarks and imports can
build runs of that size in minutes. Everything is written in one transaction: a run is stored whole or
not at all.

"Exactly" is meant literally; ``tests/dashboard/telemetry/test_bulk_load.py`` compares every stored field with
what ``ingest_batch`` stores for the batches an agent's ``Batcher`` cuts from the same readings:

* windows are the batcher's: ``window_ms`` spans aligned in Unix time, one sequence number per node per
  window that holds any reading, each GPU's window carrying that GPU's previous reading; a node's final
  reading landing exactly on a window boundary closes the last window rather than opening a new one;
* energies, sums, minute rollups and running totals are ingest's to the last bit
  (``dashboard.telemetry.bulk_windows`` says how);
* one ``BatchReceipt`` per batch, with the digest of the body the agent would have signed, so a batch
  re-sent later is recognised as a duplicate.

Not written: ``RunEvent`` markers (the input carries none). Batches are never split: a window that would
break a wire limit is refused, where the agent would have split it. Each GPU is read by one session (a GPU
in two is refused), so each is ingest's common case: no window is counted against another stream's
(``dashboard.telemetry.coverage``). Rows are laid down in time order across GPUs, as live ingest lays
them down, so pages read the same physical layout they would in use.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from dashboard.projects.models import Project
from dashboard.telemetry.batch_store import WINDOW_COLUMNS, WINDOW_TYPES
from dashboard.telemetry.bound_sql import write_rows
from dashboard.telemetry.bulk_windows import (
    BodyText,
    GpuSamples,
    GpuWindows,
    add_in_order,
    batch_body,
    close_on_final_reading,
    cut,
    window_blobs,
)
from dashboard.telemetry.models import (
    BatchReceipt,
    Gpu,
    GpuMinute,
    Node,
    Run,
    RunGpu,
    RunNode,
    RunTag,
    SampleWindow,
)
from dashboard.telemetry.nodes import register_node
from dashboard.telemetry.signals import announce, run_closed
from dashboard.telemetry.window_figures import MINUTE_COLUMNS
from dashboard.telemetry.windows import ms_to_datetime
from planner.units import MS_PER_MINUTE, MS_PER_S
from wattwise_agent import wire

__all__ = ["BulkLoadError", "Chunk", "GpuSamples", "GpuSpec", "LoadResult", "NodeSpec", "RunSpec", "load_run"]


class BulkLoadError(ValueError):
    """The input cannot be stored as ingest would store it; the text says why."""


@dataclass(frozen=True)
class GpuSpec:
    index: int
    uuid: str
    name: str
    energy_source: str = Gpu.EnergySource.COUNTER
    power_field: str = Gpu.PowerField.AVERAGE


@dataclass(frozen=True)
class NodeSpec:
    """One node's agent session: ``stream`` is the session id its batches are numbered under."""

    name: str
    stream: str
    gpus: tuple[GpuSpec, ...]
    backend: str = "simulated"
    host: str = ""
    zone: str = ""
    region: str = ""


@dataclass(frozen=True)
class RunSpec:
    project: str
    run: str
    nodes: tuple[NodeSpec, ...]
    simulated: bool = True
    tags: tuple[str, ...] = ()
    window_ms: int = 5000


@dataclass(frozen=True)
class Chunk:
    """Every GPU's readings over one stretch of the run, as ``readings[node][gpu]`` in ``RunSpec`` order.

    All readings lie before ``end_ms``, a whole minute, so no window or minute spans two chunks (that is
    what lets each chunk be written and forgotten). The last chunk has ``end_ms=None``.
    """

    readings: tuple[tuple[GpuSamples, ...], ...]
    end_ms: int | None

    @property
    def samples(self) -> int:
        return sum(g.samples for node in self.readings for g in node)


@dataclass(frozen=True)
class LoadResult:
    run_id: int
    samples: int
    windows: int
    minutes: int
    batches: int
    seconds: float


@dataclass
class _GpuState:
    spec: GpuSpec
    run_gpu_id: int
    prev: tuple[int, int] | None = None  # the last reading so far: (t_ms, energy_mj)
    energy_j: float = 0.0
    power_sum_w: float = 0.0
    samples: int = 0
    peak_power_w: float | None = None
    first_ms: int | None = None
    last_ms: int | None = None
    max_window_ms: int = 0  # RunGpu.max_window_ms: the longest time a window covers

    def fold(self, w: GpuWindows) -> None:
        """Add a stretch of windows to the running totals, as ingest's upserts add them one by one."""
        r = w.readings
        self.energy_j = add_in_order(self.energy_j, w.energy_j)
        self.power_sum_w = add_in_order(self.power_sum_w, w.power_total_w)
        self.samples += r.samples
        peak = float(w.minutes["power_max_w"].max())
        self.peak_power_w = peak if self.peak_power_w is None else max(self.peak_power_w, peak)
        self.first_ms = int(r.t_ms[0]) if self.first_ms is None else self.first_ms
        self.last_ms = int(r.t_ms[-1])
        self.prev = (int(r.t_ms[-1]), int(r.energy_mj[-1]))
        covers = [last - (prev[0] if prev else first) for first, last, prev in
                  zip(r.t_ms[w.starts].tolist(), r.t_ms[w.ends - 1].tolist(), w.prev, strict=True)]
        self.max_window_ms = max([self.max_window_ms, *covers])


@dataclass
class _NodeState:
    spec: NodeSpec
    node_id: int
    gpus: list[_GpuState]
    next_seq: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    samples: int = 0


@dataclass(frozen=True)
class _Part:
    """One GPU's windows in one chunk, with where they belong."""

    gpu: _GpuState
    stream: str
    windows: GpuWindows
    seq: np.ndarray  # each window's batch sequence number


def load_run(
    spec: RunSpec,
    chunks: Iterable[Chunk],
    *,
    replace: bool = False,
    progress: bool = False,
    total_samples: int | None = None,
) -> LoadResult:
    """Store a finished run from its readings, chunk by chunk, exactly as ingesting its batches would.

    Creates the project, nodes (registered with a token nobody sees: rotate it with ``create_node
    --rotate`` to stream from one) and GPUs when missing. An existing run of that name is refused, or
    deleted first with ``replace``. ``progress`` shows a tqdm bar (``total_samples`` sizes it).
    """
    if connection.vendor not in ("postgresql", "sqlite"):
        raise BulkLoadError(f"the bulk path writes PostgreSQL (COPY) or SQLite, not {connection.vendor}")
    if spec.window_ms <= 0 or MS_PER_MINUTE % spec.window_ms:
        raise BulkLoadError(f"window_ms must divide a minute, got {spec.window_ms}")
    began = time.monotonic()
    with transaction.atomic(), tqdm(
        total=total_samples, unit="samples", unit_scale=True, desc=f"loading {spec.run}", disable=not progress
    ) as bar:
        loader = _Loader(spec, replace=replace)
        for chunk in chunks:
            loader.add(chunk)
            bar.update(chunk.samples)
        loader.finish()
    return LoadResult(loader.run.pk, loader.samples, loader.windows, loader.minutes, loader.batches,
                      time.monotonic() - began)


class _Loader:
    def __init__(self, spec: RunSpec, *, replace: bool) -> None:
        self.spec = spec
        self.run, self.nodes = _create_rows(spec, replace=replace)
        self.samples = self.windows = self.minutes = self.batches = 0
        self._start_ms: int | None = None  # the previous chunk's end: readings must come after it
        self._finished = False
        self._future_ms = (timezone.now() + timedelta(seconds=settings.WATTWISE_MAX_FUTURE_S)).timestamp() * MS_PER_S

    def add(self, chunk: Chunk) -> None:
        if self._finished:
            raise BulkLoadError("a chunk came after the last one (the one with end_ms=None)")
        if chunk.end_ms is not None and chunk.end_ms % MS_PER_MINUTE:
            raise BulkLoadError(f"a chunk must end on a whole minute, got end_ms={chunk.end_ms}")
        if len(chunk.readings) != len(self.nodes) or any(
            len(r) != len(n.gpus) for r, n in zip(chunk.readings, self.nodes, strict=False)
        ):
            raise BulkLoadError("a chunk must hold one GpuSamples per GPU of every node, in RunSpec order")
        parts: list[_Part] = []
        receipts: list[tuple[int, list[Any]]] = []
        for node, readings in zip(self.nodes, chunk.readings, strict=True):
            node_parts = self._node_parts(node, readings, chunk)
            receipts += self._receipts(node, node_parts, final=chunk.end_ms is None)
            parts += node_parts
        minute_rows = [
            [p.gpu.run_gpu_id, *row]
            for p in parts
            for row in zip(*(p.windows.minutes[c].tolist() for c in MINUTE_COLUMNS[1:]), strict=True)
        ]
        _write_windows(parts)
        write_rows(GpuMinute._meta.db_table, MINUTE_COLUMNS, _MINUTE_TYPES, sorted(minute_rows, key=lambda r: r[1]))
        receipts.sort(key=lambda r: r[0])
        write_rows(BatchReceipt._meta.db_table, _RECEIPT_COLUMNS, _RECEIPT_TYPES, [row for _, row in receipts])
        self.samples += chunk.samples
        self.windows += sum(p.windows.count for p in parts)
        self.minutes += len(minute_rows)
        self.batches += len(receipts)
        self._start_ms = chunk.end_ms
        self._finished = chunk.end_ms is None

    def _node_parts(self, node: _NodeState, readings: Sequence[GpuSamples], chunk: Chunk) -> list[_Part]:
        """Cut one node's readings into the batcher's windows and number them as its batches."""
        w = self.spec.window_ms
        checked = [_checked(r, f"{node.spec.name} GPU {g.spec.index}", self._start_ms, chunk.end_ms, self._future_ms)
                   for r, g in zip(readings, node.gpus, strict=True)]
        present = [(g, r) for g, r in zip(node.gpus, checked, strict=True) if r.samples]
        if not present:
            return []
        numbers = [r.t_ms // w for _, r in present]
        if chunk.end_ms is None and not close_on_final_reading([r for _, r in present], numbers, w):
            last = max(int(r.t_ms[-1]) for _, r in present)
            alone = all(r.t_ms[-1] == last and r.samples == 1 for _, r in present)
            if alone and last % w == 0 and node.last_ms is not None and node.last_ms // w == last // w - 1:
                raise BulkLoadError(f"{node.spec.name}: the final reading closes a window of the previous "
                                    "chunk; end that chunk later")
        node_windows = np.unique(np.concatenate(numbers))
        parts = []
        for (gpu, r), number in zip(present, numbers, strict=True):
            windows = cut(r, number, gpu.prev)
            gpu.fold(windows)
            seq = node.next_seq + np.searchsorted(node_windows, windows.window)
            parts.append(_Part(gpu, node.spec.stream, windows, seq))
        node.next_seq += int(node_windows.size)
        node.first_ms = min(int(r.t_ms[0]) for _, r in present) if node.first_ms is None else node.first_ms
        node.last_ms = max(int(r.t_ms[-1]) for _, r in present)
        node.samples += sum(r.samples for _, r in present)
        return parts

    def _receipts(self, node: _NodeState, parts: list[_Part], *, final: bool) -> list[tuple[int, list[Any]]]:
        """One BatchReceipt row per batch of the node, with the window number to order them by."""
        if not parts:
            return []
        numbers = np.unique(np.concatenate([p.windows.window for p in parts]))
        texts = [BodyText(p.windows, g.uuid, g.index, g.name, g.energy_source, g.power_field)
                 for p in parts for g in [p.gpu.spec]]
        at = [np.searchsorted(p.windows.window, numbers).tolist() for p in parts]
        has = [set(p.windows.window.tolist()) for p in parts]
        received = timezone.now()
        rows = []
        for k, number in enumerate(numbers.tolist()):
            entries, samples, seq = [], 0, -1
            for p, text, positions, windows in zip(parts, texts, at, has, strict=True):
                if number not in windows:
                    continue
                j = positions[k]
                seq, samples = int(p.seq[j]), samples + int(p.windows.ends[j] - p.windows.starts[j])
                entries.append(text.entry(j))
            start_ms = number * self.spec.window_ms
            # The batcher ends a window at its aligned end, but the stream's last one at its final reading.
            end_ms = node.last_ms if final and number == numbers[-1] else start_ms + self.spec.window_ms
            assert end_ms is not None
            body = batch_body(self.spec.run, node.spec.stream, seq, self.spec.simulated, start_ms, end_ms, entries)
            if len(body) > wire.MAX_BODY_BYTES or samples > wire.MAX_SAMPLES_PER_BATCH or \
                    len(entries) > wire.MAX_GPUS_PER_BATCH:
                raise BulkLoadError(f"{node.spec.name}: the window at {start_ms} ms is more than one batch may "
                                    "carry; an agent would split it, the bulk path does not")
            digest = hashlib.sha256(body).hexdigest()
            rows.append((number, [node.node_id, node.spec.stream, seq, self.run.pk, digest, samples, received]))
        return rows

    def finish(self) -> None:
        if not self._finished:
            raise BulkLoadError("the chunks ended without a last one (end_ms=None)")
        gpus = [g for node in self.nodes for g in node.gpus]
        RunGpu.objects.bulk_update(
            [
                RunGpu(id=g.run_gpu_id, energy_j=g.energy_j, samples=g.samples, power_sum_w=g.power_sum_w,
                       peak_power_w=g.peak_power_w or 0.0, first_ms=g.first_ms, last_ms=g.last_ms,
                       max_window_ms=g.max_window_ms)
                for g in gpus
            ],
            ["energy_j", "samples", "power_sum_w", "peak_power_w", "first_ms", "last_ms", "max_window_ms"],
        )
        # Ingest creates a GPU's part in a run with its first window: a GPU that sent nothing has none.
        RunGpu.objects.filter(id__in=[g.run_gpu_id for g in gpus if not g.samples]).delete()
        now = timezone.now()
        for node in self.nodes:
            RunNode.objects.filter(run=self.run, node_id=node.node_id, stream=node.spec.stream).update(
                opened_at=ms_to_datetime(node.first_ms) if node.first_ms is not None else None,
                closed_at=ms_to_datetime(node.last_ms) if node.last_ms is not None else None,
                last_seq=node.next_seq - 1 if node.next_seq else None,
                samples_declared=node.samples,
            )
            if node.samples:
                Node.objects.filter(pk=node.node_id).update(last_seen_at=now)
        opened = [n.first_ms for n in self.nodes if n.first_ms is not None]
        closed = [n.last_ms for n in self.nodes if n.last_ms is not None]
        self.run.status = Run.Status.FINISHED
        self.run.started_at = ms_to_datetime(min(opened)) if opened else None
        self.run.ended_at = ms_to_datetime(max(closed)) if closed else None
        self.run.save(update_fields=["status", "started_at", "ended_at"])
        announce(run_closed, self.run.pk)


def _create_rows(spec: RunSpec, *, replace: bool) -> tuple[Run, list[_NodeState]]:
    """The rows the readings hang off: project, run, tags, nodes, GPUs, sessions and (empty) totals."""
    project, _ = Project.objects.get_or_create(name=spec.project)
    existing = Run.objects.filter(project=project, name=spec.run)
    if existing.exists():
        if not replace:
            raise BulkLoadError(f"run {spec.run!r} already exists in project {spec.project!r}")
        existing.delete()
    run = Run.objects.create(project=project, name=spec.run, simulated=spec.simulated)
    RunTag.objects.bulk_create([RunTag(run=run, name=t) for t in spec.tags], ignore_conflicts=True)
    nodes = []
    for node_spec in spec.nodes:
        node = Node.objects.filter(name=node_spec.name).first()
        if node is None:
            node, _token, _ = register_node(node_spec.name, spec.project)
        elif node.project_id != project.pk:
            raise BulkLoadError(f"node {node_spec.name!r} belongs to another project than {spec.project!r}")
        RunNode.objects.create(run=run, node=node, stream=node_spec.stream, backend=node_spec.backend,
                               host=node_spec.host, zone=node_spec.zone, region=node_spec.region)
        states = []
        for gpu_spec in node_spec.gpus:
            gpu, _ = Gpu.objects.get_or_create(
                node=node, uuid=gpu_spec.uuid,
                defaults={"index": gpu_spec.index, "name": gpu_spec.name, "energy_source": gpu_spec.energy_source,
                          "power_field": gpu_spec.power_field, "simulated": spec.simulated},
            )
            if RunGpu.objects.filter(run=run, gpu=gpu).exists():
                raise BulkLoadError(f"GPU {gpu_spec.uuid} of {node_spec.name!r} is in two sessions: the bulk path "
                                    "loads each GPU from one stream")
            run_gpu = RunGpu.objects.create(run=run, gpu=gpu, estimated=gpu_spec.energy_source != Gpu.EnergySource.COUNTER,
                                            first_stream=node_spec.stream)
            states.append(_GpuState(gpu_spec, run_gpu.pk))
        nodes.append(_NodeState(node_spec, node.pk, states))
    return run, nodes


def _checked(r: GpuSamples, where: str, start_ms: int | None, end_ms: int | None, future_ms: float) -> GpuSamples:
    """The readings as int64 arrays, or BulkLoadError where ingest would have refused them."""
    arrays = {}
    for name, (low, high) in wire.SAMPLE_COLUMNS.items():
        values = np.asarray(r.column(name), dtype=np.int64)
        if values.shape != (r.t_ms.size,):
            raise BulkLoadError(f"{where}: {name} has {values.size} values but t_ms has {r.t_ms.size}")
        if values.size and (values.min() < low or values.max() > high):
            raise BulkLoadError(f"{where}: {name} value out of range [{low}, {high}]")
        arrays[name] = values
    t = arrays["t_ms"]
    if t.size:
        if np.any(np.diff(t) <= 0):
            raise BulkLoadError(f"{where}: timestamps must strictly increase")
        if (start_ms is not None and t[0] < start_ms) or (end_ms is not None and t[-1] >= end_ms):
            raise BulkLoadError(f"{where}: readings fall outside their chunk [{start_ms}, {end_ms})")
        if t[-1] > future_ms:
            raise BulkLoadError(f"{where}: readings lie in the future")
    return GpuSamples(**arrays)


# --- writing --------------------------------------------------------------------------------------

_MINUTE_TYPES = ("int8", "int8", "int4", *["float8"] * (len(MINUTE_COLUMNS) - 3))
_RECEIPT_COLUMNS = ("node_id", "stream", "seq", "run_id", "body_sha256", "samples", "received_at")
_RECEIPT_TYPES = ("int8", "text", "int8", "int8", "text", "int4", "timestamptz")


def _write_windows(parts: list[_Part]) -> None:
    """SampleWindow rows in time order across GPUs, as live ingest lays them down."""
    if not parts:
        return
    numbers = np.concatenate([p.windows.window for p in parts])
    which = np.concatenate([np.full(p.windows.count, i) for i, p in enumerate(parts)])
    position = np.concatenate([np.arange(p.windows.count) for p in parts])
    order = np.lexsort((which, numbers))
    rows_of = []
    for p in parts:
        w = p.windows
        rows_of.append(list(zip(
            w.readings.t_ms[w.starts].tolist(), w.readings.t_ms[w.ends - 1].tolist(), (w.ends - w.starts).tolist(),
            w.energy_j.tolist(), [prev[0] if prev else None for prev in w.prev],
            [prev[1] if prev else None for prev in w.prev], p.seq.tolist(), window_blobs(w), strict=True,
        )))

    def rows() -> Iterable[Sequence[Any]]:
        for i, j in zip(which[order].tolist(), position[order].tolist(), strict=True):
            first, last, samples, energy_j, prev_t, prev_energy, seq, blob = rows_of[i][j]
            yield (parts[i].gpu.run_gpu_id, parts[i].stream, seq, first, last, samples, energy_j, prev_t, prev_energy,
                   blob)

    write_rows(SampleWindow._meta.db_table, WINDOW_COLUMNS, WINDOW_TYPES, rows())
