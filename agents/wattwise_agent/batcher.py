"""The batcher: one ``batch`` message per node per window, columnar per GPU, sequence-numbered.

Windows are aligned to multiples of the window length in Unix time, so windows from every node of a
run line up. A window is half-open, ``[window_start_ms, window_end_ms)``, except the stream's last one,
which also holds the final reading taken exactly at its end. Each GPU entry repeats the previous
reading of that GPU (``prev_t_ms`` / ``prev_energy_mj``), so each batch's energy is a self-contained
counter difference (see ``wattwise_agent.wire.GpuWindow.energy_deltas_mj``).

A window that would break a wire limit (samples, events, GPUs or body bytes per batch) is split: by
GPU group when there are more GPUs than one batch may hold, and by time (in halves, recursively)
otherwise. Every part gets its own sequence number; the prev-reading chain runs through the parts.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from wattwise_agent import wire
from wattwise_agent.backends.base import GpuInfo
from wattwise_agent.sampler import Sample

log = logging.getLogger(__name__)

_SEQ_PLACEHOLDER = 10**15
_COLUMNS = ("t_ms", "energy_mj", "power_mw", "sm_clock_mhz", "util_pct", "temp_c")


def batch_samples(payload: Mapping[str, Any]) -> int:
    """Number of samples (readings of one GPU) in a batch payload."""
    return sum(len(gpu["t_ms"]) for gpu in payload["gpus"])


class Batcher:
    """Collects samples and events into batch payloads. Not thread-safe: the streamer serialises calls."""

    def __init__(
        self,
        *,
        run: str,
        stream: str,
        simulated: bool,
        gpus: Sequence[GpuInfo],
        window_s: float = 5.0,
        max_samples: int = wire.MAX_SAMPLES_PER_BATCH,
        max_body_bytes: int = wire.MAX_BODY_BYTES,
        max_gpus: int = wire.MAX_GPUS_PER_BATCH,
        max_events: int = wire.MAX_EVENTS_PER_BATCH,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.run = run
        self.stream = stream
        self.simulated = simulated
        self.gpus = list(gpus)
        self.window_ms = max(round(window_s * 1000), 1)
        self.max_samples = max_samples
        self.max_body_bytes = max_body_bytes
        self.max_gpus = max_gpus
        self.max_events = max_events
        self.next_seq = 0
        self.events_dropped = 0
        self._start: int | None = None
        self._end = 0
        self._count = 0
        self._last_t: int | None = None
        self._columns: list[dict[str, list[int]]] = [{c: [] for c in _COLUMNS} for _ in self.gpus]
        self._events: list[dict[str, Any]] = []
        self._prev: dict[str, tuple[int, int]] = {}

    def _align(self, t_ms: int) -> int:
        return t_ms - t_ms % self.window_ms

    def add_samples(self, t_ms: int, samples: Sequence[Sample | None], *, final: bool = False) -> list[dict[str, Any]]:
        """Add one tick's samples (one per GPU, None where a GPU gave none); return batches now complete.

        ``final`` marks the stream's last reading: taken exactly at a window end, it closes that window
        rather than opening a lonely new one.
        """
        ready = self._advance(t_ms, final=final)
        for columns, sample in zip(self._columns, samples):
            if sample is None:
                continue
            if columns["t_ms"] and sample.t_ms <= columns["t_ms"][-1]:
                continue  # a repeated timestamp would be rejected by the app: keep the first
            for name in _COLUMNS:
                columns[name].append(getattr(sample, name))
            self._count += 1
        return ready

    def add_event(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Add a marker (``{"t_ms", "kind", ...}``, extra fields strings or numbers) to its window.

        Its kind and text fields are cut to the wire's name limit; anything else the app would refuse
        raises WireError.
        """
        clean = wire.event_payload(event["t_ms"], event["kind"], event)
        ready = self._advance(clean["t_ms"], final=False)
        self._events.append(clean)
        return ready

    def flush(self, end_ms: int | None = None) -> list[dict[str, Any]]:
        """Emit what is left as the stream's last window (it ends at ``end_ms`` or the last reading)."""
        if self._start is None:
            return []
        if self._count == 0:
            if self._events:
                log.warning("%d event(s) after the last sample were dropped: no GPU reading to carry them",
                            len(self._events))
            self._reset_window(None)
            return []
        last = max(self._last_t or self._start, end_ms or 0)
        out = self._emit(self._start, last, inclusive=True)
        self._reset_window(None)
        return out

    def _advance(self, t_ms: int, *, final: bool) -> list[dict[str, Any]]:
        if self._start is not None and t_ms < self._start:
            raise ValueError(f"time went backwards: {t_ms} is before the open window {self._start}")
        self._last_t = t_ms if self._last_t is None else max(self._last_t, t_ms)
        if self._start is None:
            self._reset_window(t_ms)
            return []
        if t_ms < self._end or (final and t_ms == self._end):
            return []
        if self._count == 0:
            # Only events so far: stretch the window rather than send markers without readings.
            self._end = self._align(t_ms) + self.window_ms
            return []
        out = self._emit(self._start, self._end, inclusive=False)
        self._reset_window(t_ms)
        return out

    def _reset_window(self, t_ms: int | None) -> None:
        self._columns = [{c: [] for c in _COLUMNS} for _ in self.gpus]
        self._events = []
        self._count = 0
        if t_ms is None:
            self._start = None
        else:
            self._start = self._align(t_ms)
            self._end = self._start + self.window_ms

    def _emit(self, start: int, end: int, *, inclusive: bool) -> list[dict[str, Any]]:
        events = sorted(self._events, key=lambda e: e["t_ms"])
        return self._emit_range(start, end, inclusive, events)

    def _slices(self, start: int, end: int, inclusive: bool) -> list[tuple[int, int]]:
        out = []
        for columns in self._columns:
            ts = columns["t_ms"]
            lo = bisect.bisect_left(ts, start)
            hi = bisect.bisect_right(ts, end) if inclusive else bisect.bisect_left(ts, end)
            out.append((lo, hi))
        return out

    def _emit_range(self, start: int, end: int, inclusive: bool, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        slices = self._slices(start, end, inclusive)
        in_range = [e for e in events if start <= e["t_ms"] < end or (inclusive and e["t_ms"] == end)]
        groups = self._gpu_groups(slices)
        too_many = any(sum(slices[i][1] - slices[i][0] for i in group) > self.max_samples for group in groups)
        too_many = too_many or len(in_range) > self.max_events
        payloads: list[dict[str, Any]] = []
        if not too_many:
            payloads = [
                self._payload(start, end, group, slices, in_range if n == 0 else [])
                for n, group in enumerate(groups)
            ]
            too_big = any(
                len(json.dumps(p, separators=(",", ":"), allow_nan=False)) > self.max_body_bytes for p in payloads
            )
            if not too_big:
                return self._commit(payloads, groups, slices)
        times = sorted({t for columns, (lo, hi) in zip(self._columns, slices)
                        for t in columns["t_ms"][lo:hi]})
        if len(times) < 2:
            if len(in_range) > self.max_events:
                self.events_dropped += len(in_range) - self.max_events
                log.warning("dropped %d events: more than %d at one sample instant",
                            len(in_range) - self.max_events, self.max_events)
                kept = in_range[: self.max_events]
                return self._emit_range(start, end, inclusive, kept)
            raise ValueError("one sample instant of this node does not fit in a batch under the wire limits")
        middle = times[len(times) // 2]
        return self._emit_range(start, middle, False, in_range) + self._emit_range(middle, end, inclusive, in_range)

    def _gpu_groups(self, slices: list[tuple[int, int]]) -> list[list[int]]:
        with_samples = [i for i, (lo, hi) in enumerate(slices) if hi > lo]
        return [with_samples[k : k + self.max_gpus] for k in range(0, len(with_samples), self.max_gpus)]

    def _payload(
        self,
        start: int,
        end: int,
        group: list[int],
        slices: list[tuple[int, int]],
        events: list[dict[str, Any]],
    ) -> dict[str, Any]:
        entries = []
        for i in group:
            gpu, (lo, hi), columns = self.gpus[i], slices[i], self._columns[i]
            entries.append(
                wire.gpu_payload(
                    uuid=gpu.uuid,
                    index=gpu.index,
                    name=gpu.name,
                    energy_source=gpu.energy_source,
                    power_field=gpu.power_field,
                    prev=self._prev.get(gpu.uuid),
                    columns={name: columns[name][lo:hi] for name in _COLUMNS},
                    component=gpu.component,
                    power_limit_mw=gpu.power_limit_mw,
                )
            )
        return {
            "run": self.run,
            "stream": self.stream,
            "seq": _SEQ_PLACEHOLDER,  # assigned when committed; as wide as any real one for the size check
            "simulated": self.simulated,
            "window_start_ms": start,
            "window_end_ms": end,
            "gpus": entries,
            "events": events,
        }

    def _commit(
        self, payloads: list[dict[str, Any]], groups: list[list[int]], slices: list[tuple[int, int]]
    ) -> list[dict[str, Any]]:
        for payload in payloads:
            payload["seq"] = self.next_seq
            self.next_seq += 1
        for group in groups:
            for i in group:
                _lo, hi = slices[i]
                columns = self._columns[i]
                self._prev[self.gpus[i].uuid] = (columns["t_ms"][hi - 1], columns["energy_mj"][hi - 1])
        return payloads

    def open_window(self) -> dict[str, Any] | None:
        """The readings and events not yet in a batch, as a payload (unnumbered, nothing committed): what
        "energy so far" adds to the batches made (``wattwise_agent.run_energy``). None before any reading."""
        if self._start is None:
            return None
        slices = [(0, len(columns["t_ms"])) for columns in self._columns]
        group = [i for i, (lo, hi) in enumerate(slices) if hi > lo]
        return self._payload(self._start, self._end, group, slices, list(self._events))
