"""The streamer: backend → sampler → batcher → signed envelopes → outbox (transport + spool).

This is the library API behind ``python -m wattwise_agent stream``, the torch ``Tracker`` and the app's in-process
demo seeding. One ``Streamer`` is one *stream*: an agent session with a fresh id, sequence numbers from
0, an ``open_run`` message first and a ``close_run`` message last.

Thread model: ``tick`` (the sampling loop) may run in one thread while ``mark`` (step and stage markers)
is called from others. Markers are timestamped under a lock and handed to the batcher by the sampling
loop, in time order with the samples, so every marker lands in the window its time belongs to.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wattwise_agent import __version__, wire
from wattwise_agent.backends.base import GpuBackend
from wattwise_agent.batcher import Batcher, batch_samples
from wattwise_agent.clock import Clock, RealClock
from wattwise_agent.grid_intensity import run_place
from wattwise_agent.outbox import Outbox, ThreadedOutbox, signed_with
from wattwise_agent.run_energy import EnergyTally, RunEnergy
from wattwise_agent.run_file import RunFile, unsigned_envelope
from wattwise_agent.sampler import Sampler
from wattwise_agent.spool import Envelope, Spool
from wattwise_agent.transport import TokenRejected, Transport

log = logging.getLogger(__name__)

MAX_RATE_HZ = 100.0  # timestamps are whole ms and NVML counters update every 20-100 ms anyway


@dataclass(frozen=True)
class StreamSummary:
    """What a stream did; ``exit_line()`` is the JSON object the CLI prints last."""

    run: str
    node: str
    stream: str
    backend: str
    simulated: bool
    batches_sent: int  # batches of this stream the app (or the broker) took
    samples_sent: int  # samples (one reading of one GPU) in those batches
    spooled: int  # envelopes left in the spool at exit, to be sent by the next run
    refused: int = 0  # envelopes the app can never accept, set aside in the spool's refused file
    token_rejected: str | None = None  # the app's reason, when it refused the node's token (401)
    # What the stream measured and sent, counted as the app counts it (wattwise_agent.run_energy).
    measured: RunEnergy | None = None
    true_energy_j: dict[str, float] | None = None  # the simulator's ground truth per GPU UUID (simulated only)
    samples_read: int = 0
    batches_made: int = 0
    spool_location: str = field(default="", compare=False)
    recorded_to: str | None = None  # the run file that keeps the stream's messages (wattwise_agent.run_file)

    @property
    def energy_j(self) -> dict[str, float]:
        """Measured energy per GPU UUID, in J: what the app stores for the run once it has every batch."""
        return self.measured.energy_j if self.measured is not None else {}

    @property
    def total_energy_j(self) -> float:
        """Every device's energy (GPUs, and CPUs and DRAM when read), in J."""
        return self.measured.total_energy_j if self.measured is not None else 0.0

    @property
    def duration_s(self) -> float:
        return self.measured.duration_s if self.measured is not None else 0.0

    @property
    def steps(self) -> int:
        return self.measured.steps if self.measured is not None else 0

    @property
    def energy_per_step_j(self) -> float | None:
        return self.measured.energy_per_step_j if self.measured is not None else None

    @property
    def emissions_g(self) -> float | None:
        """Yearly-intensity emissions when the stream was given a zone or region (else None)."""
        return self.measured.emissions_g if self.measured is not None else None

    def exit_line(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "run": self.run,
            "node": self.node,
            "stream": self.stream,
            "backend": self.backend,
            "simulated": self.simulated,
            "batches_sent": self.batches_sent,
            "samples_sent": self.samples_sent,
            "spooled": self.spooled,
            "refused": self.refused,
        }
        if self.measured is not None:
            line["energy_j"] = self.energy_j
            if set(self.measured.components_j) - {wire.COMPONENT_GPU}:  # the node's CPUs and DRAM were read too
                line["components_j"] = self.measured.components_j
        if self.true_energy_j is not None:
            line["true_energy_j"] = {uuid: round(j, 3) for uuid, j in self.true_energy_j.items()}
        if self.emissions_g is not None:
            line["emissions_g"] = self.emissions_g
        if self.recorded_to:
            line["out"] = self.recorded_to
        return line


class Streamer:
    """Streams one run's GPU readings from ``backend`` through ``transport``.

    ``token`` is the node's secret; only the HMAC key derived from it is kept. ``spool`` holds envelopes
    while the transport is unavailable (a ``DiskSpool`` survives restarts; default: in memory).
    ``threaded`` sends from a background thread (default: with a real clock, not with a virtual one).
    ``node_energy``: the node's CPU and DRAM energy, read beside the GPUs (``wattwise_agent.backends.rapl.open_rapl``).
    ``record``: a run file that keeps every message as it is made, whatever becomes of it; a ``RunFile`` as
    the transport records without sending, and only then may ``token`` be None (messages are signed at
    upload). ``stream``: this stream's id (default: a fresh uuid4 hex).
    """

    def __init__(
        self,
        backend: GpuBackend,
        transport: Transport,
        *,
        run: str,
        token: str | None,
        node: str | None = None,
        clock: Clock | None = None,
        rate_hz: float = 10.0,
        window_s: float = 5.0,
        spool: Spool | None = None,
        tags: Sequence[str] = (),
        host: str | None = None,
        threaded: bool | None = None,
        drain_timeout_s: float = 10.0,
        retry_min_s: float = 1.0,
        batch_limits: dict[str, int] | None = None,
        zone: str | None = None,
        region: str | None = None,
        node_energy: GpuBackend | None = None,
        record: RunFile | None = None,
        stream: str | None = None,
    ) -> None:
        if not 0 < rate_hz <= MAX_RATE_HZ:
            raise ValueError(f"rate_hz must be in (0, {MAX_RATE_HZ:g}]")
        if not token and not isinstance(transport, RunFile):
            raise ValueError("a node token is required to sign messages (only a run file keeps them unsigned)")
        self.backend = backend
        # What open_run will carry, checked now with the wire's own rules (WireError names the field).
        self.run_name: str = wire.check_field(wire.OpenRun, "run", run)
        self.node: str = wire.check_field(wire.Envelope, "node", node or socket.gethostname())
        self.host: str = wire.check_field(wire.OpenRun, "host", host or socket.gethostname())
        self.tags: list[str] = wire.check_field(wire.OpenRun, "tags", [str(t) for t in tags])
        self.zone: str | None = wire.check_field(wire.OpenRun, "zone", zone or None)
        self.region: str | None = wire.check_field(wire.OpenRun, "region", region or None)
        self.clock: Clock = clock or RealClock()
        self.rate_hz = rate_hz
        self.drain_timeout_s = drain_timeout_s
        self.stream: str = wire.check_field(wire.Batch, "stream", stream) if stream else uuid.uuid4().hex
        self._token = token  # seal derives the signing key and key id from it; None: unsigned (a run file)
        self._record = record
        kept_in = record if record is not None else transport if isinstance(transport, RunFile) else None
        self.recorded_to: str | None = str(kept_in.path) if kept_in is not None else None
        # What was measured, counted from the batches as the app counts them, for the summary.
        self._tally = EnergyTally(run_place(self.zone, self.region))
        self._sampler = Sampler(backend, node_energy)
        self._batcher = Batcher(
            run=self.run_name,
            stream=self.stream,
            simulated=backend.simulated,
            gpus=self._sampler.gpus,
            window_s=window_s,
            **(batch_limits or {}),
        )
        self._outbox = Outbox(transport, spool, on_delivered=self._delivered,
                              reseal=signed_with(token) if token else None, retry_min_s=retry_min_s)
        use_thread = (not self.clock.virtual) if threaded is None else threaded
        self._sender: Outbox | ThreadedOutbox = ThreadedOutbox(self._outbox) if use_thread else self._outbox
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._in_flight: dict[str, int | None] = {}  # signature (or body) -> samples (None: not a batch)
        self._counts_lock = threading.Lock()
        self.batches_sent = 0
        self.samples_sent = 0
        self._samples_made = 0
        self._last_t: int | None = None
        self.started_ms: int | None = None
        self._opened = False
        self._closed = False

    @property
    def gpus(self) -> Sequence[Any]:
        return self._sampler.gpus

    @property
    def token_rejected(self) -> TokenRejected | None:
        """Set once the app refused the node's token: sampling stops, everything stays in the spool."""
        return self._outbox.fatal

    # -- life cycle -----------------------------------------------------------------------------

    def open(self) -> None:
        """Send ``open_run`` (after anything an earlier run left in the spool)."""
        if self._opened:
            return
        self._opened = True
        self.started_ms = self.clock.now_ms()
        self._post(
            wire.KIND_OPEN_RUN,
            {
                "run": self.run_name,
                "stream": self.stream,
                "started_ms": self.started_ms,
                "simulated": self.backend.simulated,
                "backend": self.backend.name,
                "host": self.host,
                "tags": self.tags,
                "gpus": [gpu.open_run_entry() for gpu in self._sampler.gpus],
                "agent_version": __version__,
                # Only when given: where the node runs, for the app's carbon accounting.
                **({"zone": self.zone} if self.zone else {}),
                **({"region": self.region} if self.region else {}),
            },
        )

    def tick(self, *, final: bool = False) -> None:
        """Take one reading of every GPU now and pass on any batch that completes.

        Raises ``TokenRejected`` once the app refused the node's token: nothing new is sampled then.
        """
        if not self._opened:
            self.open()
        if self._outbox.fatal is not None:
            raise self._outbox.fatal
        t_ms = self.clock.now_ms()
        samples = None
        if self._last_t is None or t_ms > self._last_t:
            samples = self._sampler.sample(t_ms)
        else:
            t_ms = self._last_t  # same millisecond as the last reading: only hand over markers
        with self._lock:
            ready = self._hand_over_markers(t_ms)
            if samples is not None:
                ready.extend(self._batcher.add_samples(t_ms, samples, final=final))
            self._last_t = t_ms
            self._tally.add_batches(ready)  # under the lock: energy_so_far never sees a batch twice or not at all
        self._post_batches(ready)

    def _hand_over_markers(self, t_ms: int) -> list[dict[str, Any]]:
        """Pass markers up to ``t_ms`` to the batcher in time order (call with the lock held)."""
        due = [e for e in self._pending if e["t_ms"] <= t_ms]
        self._pending = [e for e in self._pending if e["t_ms"] > t_ms]
        due.extend(self.backend.events(t_ms))
        ready: list[dict[str, Any]] = []
        for event in sorted(due, key=lambda e: e["t_ms"]):
            ready.extend(self._batcher.add_event(event))
        return ready

    def mark(self, kind: str, **fields: str | int | float) -> None:
        """Record a marker (e.g. ``step_end`` with ``step``) at the current time; thread-safe.

        Raises WireError here, in the caller's thread, for a marker the app would refuse.
        """
        wire.event_payload(0, kind, fields)
        with self._lock:
            t_ms = self.clock.now_ms()
            if self._last_t is not None:
                t_ms = max(t_ms, self._last_t)
            self._pending.append({"t_ms": t_ms, "kind": kind, **fields})

    def run(
        self,
        duration_s: float | None = None,
        *,
        stop: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Sample at ``rate_hz`` until ``duration_s`` has passed (on this streamer's clock) or ``stop``.

        A final reading is taken at the end (exactly at the end of ``duration_s``), so the energy
        covers the whole period: a run of D seconds at R Hz has D × R + 1 readings per GPU.
        """
        if not self._opened:
            self.open()
        period_ms = 1000.0 / self.rate_hz
        t0 = self.clock.now_ms()
        end_ms = None if duration_s is None else t0 + round(duration_s * 1000)
        k = 0
        while True:
            target = t0 + round(k * period_ms)
            if end_ms is not None and target >= end_ms:
                break
            self.clock.sleep_until(target, stop)
            if stop is not None and stop.is_set():
                break
            self.tick()
            if progress is not None:
                progress(self.clock.now_ms())
            # Behind schedule (a slow read): skip the missed instants rather than burst to catch up.
            k = max(k + 1, math.ceil((self.clock.now_ms() - t0) / period_ms))
        if end_ms is not None and not (stop is not None and stop.is_set()):
            self.clock.sleep_until(end_ms, stop)
        self.tick(final=True)
        if progress is not None:
            progress(self.clock.now_ms())

    def close(self, work: Mapping[str, int] | None = None) -> StreamSummary:
        """Send the last window and ``close_run`` (with the run's units of work, ``work``, when there are any),
        then try to empty the spool for ``drain_timeout_s``."""
        if self._closed:
            raise RuntimeError("stream already closed")
        if not self._opened:
            self.open()
        self._closed = True
        with self._lock:
            ready = self._hand_over_markers(self._last_t) if self._last_t is not None else []
            if self._pending:
                log.warning("%d marker(s) after the last reading were dropped", len(self._pending))
                self._pending = []
            ready.extend(self._batcher.flush(self._last_t))
            self._tally.add_batches(ready)
        self._post_batches(ready)
        last_seq = self._batcher.next_seq - 1
        self._post(
            wire.KIND_CLOSE_RUN,
            {
                "run": self.run_name,
                "stream": self.stream,
                "ended_ms": self._last_t if self._last_t is not None else self.clock.now_ms(),
                "last_seq": last_seq if last_seq >= 0 else None,
                "samples_sent": self._samples_made,
                # Only when reported: a close_run without it is what every agent sent before units of work.
                **({"work": dict(work)} if work else {}),
            },
        )
        remaining = self._sender.flush(self.drain_timeout_s)
        where = getattr(self._outbox.spool, "directory", None)
        if remaining:
            log.warning("%d envelope(s) left in the spool%s; the next run sends them first",
                        remaining, f" {where}" if where else "")
        energy = self.backend.ground_truth_energy_j() if self.backend.simulated else None
        return StreamSummary(
            run=self.run_name,
            node=self.node,
            stream=self.stream,
            backend=self.backend.name,
            simulated=self.backend.simulated,
            batches_sent=self.batches_sent,
            samples_sent=self.samples_sent,
            spooled=remaining,
            refused=self._outbox.refused,
            token_rejected=self._outbox.fatal.reason if self._outbox.fatal is not None else None,
            measured=self._tally.snapshot(),
            true_energy_j=energy,
            samples_read=self._sampler.samples_read,
            batches_made=self._batcher.next_seq,
            spool_location=str(where or "memory"),
            recorded_to=self.recorded_to,
        )

    def energy_so_far(self) -> RunEnergy:
        """What the stream has measured up to its last reading (energy per device and in all, duration, steps,
        emissions), counted as the app will count it; thread-safe and cheap (the open window's readings
        are summed, a few dozen per device), so a training callback may ask at every logging step."""
        with self._lock:
            return self._tally.snapshot(self._batcher.open_window())

    # -- sending --------------------------------------------------------------------------------

    def _post_batches(self, payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:
            samples = batch_samples(payload)
            self._samples_made += samples
            self._post(wire.KIND_BATCH, payload, samples)

    def _post(self, kind: str, payload: dict[str, Any], samples: int | None = None) -> None:
        if self._token:
            envelope = wire.seal(kind, self.node, payload, self._token)
        else:
            envelope = unsigned_envelope(kind, self.node, payload)
        if self._record is not None:
            self._record.send(envelope)
        with self._counts_lock:
            self._in_flight[_identity(envelope)] = samples
        self._sender.post(envelope)

    def _delivered(self, envelope: Envelope) -> None:
        with self._counts_lock:
            if _identity(envelope) not in self._in_flight:
                return  # an envelope an earlier run left in the spool
            samples = self._in_flight.pop(_identity(envelope))
            if samples is not None:
                self.batches_sent += 1
                self.samples_sent += samples


def _identity(envelope: Envelope) -> str:
    """An envelope's signature, or its body where it has none (a run file's): unique to the message."""
    return str(envelope.get("sig") or envelope.get("body"))
