"""Track a training run from inside the training process (PyTorch or anything else).

    from wattwise_agent.torch_hooks import Tracker

    with Tracker("gpt-small-lr3e-4") as tracker:        # WATTWISE_TOKEN / WATTWISE_URL from env
        for step, batch in enumerate(loader):
            with tracker.stage("forward"):
                loss = model(batch)
            with tracker.stage("backward"):
                loss.backward()
            optimizer.step()
            tracker.step(step)

The sampler, batcher and transport run in background threads; ``step`` and ``stage`` only append a
timestamped marker (a few µs). ``stage`` calls ``torch.cuda.synchronize()`` on entry and exit when CUDA
is in use, so the markers bracket the GPU work and not just its asynchronous launch. torch is imported
only there, and only if the program already imported it.

Under a launcher (torchrun, SLURM's srun, Open MPI's mpirun: ``wattwise_agent.launcher``) every process
of the job opens its own Tracker with the same ``run``: each streams into that one run, with its own
stream, and ``ranks`` (default ``$WATTWISE_RANKS``, else ``"own"``) says who measures what. ``"own"``:
each process reads the GPU it drives, the current CUDA device when CUDA is in use, else the
``LOCAL_RANK``-th GPU it sees (the simulated backend: GPU ``LOCAL_RANK`` of a node with one GPU per
process). ``"node"``: local rank 0 reads every GPU it sees (simulated: one per process); the other
processes open no stream and their ``step`` and ``stage`` do nothing. ``gpus=`` (or a GpuBackend) wins
over both, and a process alone on its node reads what it sees, as without a launcher.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from wattwise_agent.backends.base import GpuBackend
from wattwise_agent.backends.rapl import node_energy
from wattwise_agent.clock import Clock
from wattwise_agent.launcher import RANKS_NODE, RANKS_OWN, Launch, detect_launch, ranks_mode
from wattwise_agent.power_limit import PowerLimitOptimizer
from wattwise_agent.run_energy import RunEnergy
from wattwise_agent.run_file import RunFile, default_run_path
from wattwise_agent.spool import DiskSpool, MemorySpool, Spool, default_spool_dir
from wattwise_agent.streamer import Streamer, StreamSummary
from wattwise_agent.torch_cuda import cuda_synchronize, current_cuda_gpu_uuid
from wattwise_agent.transport import Transport, transport_for

log = logging.getLogger(__name__)


class Tracker:
    """A context manager streaming this process's GPUs for ``run``, with step and stage markers.

    ``backend``: ``"nvml"`` (default), ``"simulated"``, or a GpuBackend. ``transport``: default HTTP(S) to
    the app at ``url`` / ``$WATTWISE_URL`` (or, on a trusted network, the broker at ``broker_url`` /
    ``$WATTWISE_BROKER_URL``) with a disk spool; pass one (e.g. ``MemoryTransport``) to keep everything
    in-process. ``gpus``: NVML selectors (default
    ``CUDA_VISIBLE_DEVICES``) or, for the simulated backend, a count. ``ranks``: ``"own"`` or ``"node"``
    under a launcher (module docstring). ``clock``: the simulated backend's time, e.g. a
    ``SteppedClock`` the training loop moves on, for a replay that reads the same interval every time.
    ``cpu``: also stream the node's CPU package and DRAM energy from Linux RAPL, read from ``rapl_root``
    (default ``/sys/class/powercap``): by default beside real GPUs, not beside the simulated backend;
    ``cpu=False`` never. Under a launcher only local rank 0 reads them. ``optimize_power_limit``: ``True`` or
    :class:`~wattwise_agent.power_limit.PowerLimitOptimizer`'s keywords: try the GPUs' power limits over the
    first steps (each ``step`` is a boundary) and keep the cheapest (a dry run without ``allow_clock_changes``);
    ``power_limit`` then holds its trials and ``choice``.

    With no ``transport``, ``url`` or ``broker_url`` (and neither variable set) the tracker records locally:
    every message goes to a run file, ``out`` or ``~/.wattwise/runs/<run>-<stream>.jsonl``
    (``$WATTWISE_RUNS_DIR``), no token needed, to upload later with ``wattwise-agent upload FILE``. With
    somewhere to send, ``out`` keeps a copy of what is sent. Either way ``energy_so_far()`` and, after the
    ``with`` block, ``summary`` give the measured energy, duration, steps and emissions at once.
    """

    def __init__(
        self,
        run: str,
        *,
        backend: GpuBackend | str = "nvml",
        transport: Transport | None = None,
        url: str | None = None,
        broker_url: str | None = None,
        token: str | None = None,
        node: str | None = None,
        gpus: Sequence[str] | int | None = None,
        rate_hz: float = 10.0,
        window_s: float = 5.0,
        spool_dir: Path | str | None = None,
        tags: Sequence[str] = (),
        seed: int = 0,
        drain_timeout_s: float = 10.0,
        zone: str | None = None,
        region: str | None = None,
        ranks: str | None = None,
        clock: Clock | None = None,
        cpu: bool | None = None,
        rapl_root: Path | str | None = None,
        out: Path | str | None = None,
        optimize_power_limit: bool | Mapping[str, Any] = False,
    ) -> None:
        if clock is not None and clock.virtual and backend == "nvml":
            raise ValueError("a virtual clock drives only the simulated backend: real GPUs read in real time")
        self.run = run
        # Read once: the launcher's view of this process, and how the node's processes share the measuring.
        self.launch: Launch | None = detect_launch()
        self.ranks: str = ranks_mode(ranks)
        chosen = gpus is not None or isinstance(backend, GpuBackend)
        self._rank_launch = self.launch if self.launch is not None and self.launch.shares_node and not chosen else None
        # False on the processes that leave the measuring to local rank 0 (ranks="node").
        self.measuring: bool = not (self._rank_launch is not None and self.ranks == RANKS_NODE
                                    and self._rank_launch.local_rank != 0)
        self._clock = clock
        self._entered = False
        self._zone, self._region = zone, region
        self._cpu, self._rapl_root = cpu, rapl_root
        self._backend_spec = backend
        self._transport = transport
        self._url = url
        self._broker_url = broker_url
        self._token = token
        self._node = node
        self._gpus = gpus
        self._rate_hz = rate_hz
        self._window_s = window_s
        self._spool_dir = spool_dir
        self._tags = tags
        self._seed = seed
        self._drain_timeout_s = drain_timeout_s
        self._out = out
        self._power_limit_options = optimize_power_limit
        self.power_limit: PowerLimitOptimizer | None = None  # with optimize_power_limit: its trials and choice
        self.run_file: Path | None = None  # where the run's messages are kept (local mode, or out=)
        self._owned: list[object] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._step = 0
        self._work: dict[str, int] = {}  # units of work reported so far (add_work, set_work)
        self.streamer: Streamer | None = None
        self._backend: GpuBackend | None = None
        self.summary: StreamSummary | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> Tracker:
        import socket

        node = self._node or socket.gethostname()
        token = self._token or os.environ.get("WATTWISE_TOKEN")
        url = self._url or os.environ.get("WATTWISE_URL")
        broker_url = self._broker_url or os.environ.get("WATTWISE_BROKER_URL")
        local = self._transport is None and not url and not broker_url  # nowhere to send: record to a file
        if not token and not local:
            raise ValueError("no node token: pass token= or set WATTWISE_TOKEN")
        self._entered = True
        if not self.measuring:
            log.info("local rank 0 measures this node's GPUs (ranks=%r): this process sends nothing", self.ranks)
            return self
        backend = self._make_backend(node)
        self._backend = backend
        transport = self._transport
        spool: Spool
        stream = uuid.uuid4().hex
        recording = RunFile(self._out or default_run_path(self.run, stream)) if local or self._out else None
        if recording is not None:
            self._owned.append(recording)
            self.run_file = recording.path
        if local:
            assert recording is not None
            transport, spool = recording, MemorySpool()
            log.warning("no Wattwise app to send to (WATTWISE_URL unset): run %r is recorded in %s; upload it "
                        "later with `wattwise-agent upload %s`", self.run, recording.path, recording.path)
        elif transport is None:
            try:
                made = transport_for(url, broker_url, ca_bundle=os.environ.get("WATTWISE_CA_BUNDLE") or None)
            except ValueError:
                backend.close()
                raise
            self._owned.append(made)
            transport = made
            spool = DiskSpool(self._spool_dir or default_spool_dir(node))
        else:
            spool = DiskSpool(self._spool_dir) if self._spool_dir else MemorySpool()
        self.streamer = Streamer(
            backend, transport, run=self.run, token=token, node=node, rate_hz=self._rate_hz,
            window_s=self._window_s, spool=spool, tags=self._tags, drain_timeout_s=self._drain_timeout_s,
            zone=self._zone, region=self._region, clock=self._clock,
            node_energy=self._node_energy(node, backend),
            stream=stream, record=None if local else recording,
        )
        self.streamer.open()
        self.streamer.tick()  # the first reading now: the measured interval starts with the with-block
        self._thread = threading.Thread(target=self._sample, name="wattwise-sampler", daemon=True)
        self._thread.start()
        if self._power_limit_options is not False:
            try:
                self.power_limit = self._power_limit_optimizer(backend)
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def _power_limit_optimizer(self, backend: GpuBackend) -> PowerLimitOptimizer:
        options = dict(self._power_limit_options) if isinstance(self._power_limit_options, Mapping) else {}
        if self._rank_launch is not None and self.ranks == RANKS_NODE:
            # Only local rank 0 runs it: a collective across ranks would wait for the others forever.
            options.setdefault("reduce", None)
        return PowerLimitOptimizer(backend, on_event=self.event, **options)

    def _make_backend(self, node: str) -> GpuBackend:
        spec = self._backend_spec
        if isinstance(spec, GpuBackend):
            return spec
        if spec == "simulated":
            from wattwise_agent.backends.simulated import SimulatedBackend

            count = self._gpus if isinstance(self._gpus, int) else 1
            select = None
            launch = self._rank_launch
            if launch is not None:
                # A simulated node with one GPU per process; GPU k reads the same whoever simulates it.
                if launch.local_world_size is None and self.ranks == RANKS_NODE:
                    raise ValueError(f"ranks='node': the {launch.launcher} launcher does not say how many "
                                     "processes run on this node; pass gpus= (how many simulated GPUs)")
                count = max(launch.local_world_size or 0, launch.local_rank + 1)
                select = [launch.local_rank] if self.ranks == RANKS_OWN else None
            # Real markers come from this process: the simulator's own step markers would duplicate them.
            backend: GpuBackend = SimulatedBackend(count, node=node, seed=self._seed, step_events=False,
                                                   select=select)
        elif spec == "nvml":
            from wattwise_agent.backends.nvml import NvmlBackend

            selectors = None if self._gpus is None or isinstance(self._gpus, int) else list(self._gpus)
            if self._rank_launch is not None and self.ranks == RANKS_OWN:
                # The GPU this process drives: found by UUID when CUDA is in use, else by the launchers'
                # convention (the LOCAL_RANK-th GPU it sees).
                current = current_cuda_gpu_uuid()
                backend = (NvmlBackend([current]) if current
                           else NvmlBackend(None, local_rank=self._rank_launch.local_rank))
            else:
                backend = NvmlBackend(selectors)
        else:
            raise ValueError(f"unknown backend {spec!r}: use 'nvml', 'simulated' or a GpuBackend")
        self._owned.append(backend)
        return backend

    def _node_energy(self, node: str, backend: GpuBackend) -> GpuBackend | None:
        # A node's CPUs and DRAM are the same for every process on it: local rank 0 reads them.
        if self._rank_launch is not None and self._rank_launch.local_rank != 0:
            return None
        return node_energy(node, cpu=self._cpu, simulated=backend.simulated, root=self._rapl_root)

    def _sample(self) -> None:
        assert self.streamer is not None
        try:
            self.streamer.run(stop=self._stop)
        except BaseException as exc:  # never take the training down with the meter
            log.exception("energy tracking stopped")
            self.error = exc

    def step(self, step: int | None = None) -> None:
        """Mark the end of a training step (numbered from 0 if no number is given)."""
        if step is None:
            step = self._step
        self._step = step + 1
        self._mark("step_end", step=step)
        if self.power_limit is not None:
            self.power_limit.on_step_end()

    def add_work(self, *, steps: int = 0, samples: int = 0, tokens: int = 0) -> None:
        """Count units of work done since the last call (e.g. the tokens of each batch). The run's totals go
        with ``close_run``, so the app shows energy and emissions per step, sample and token."""
        for unit, amount in (("steps", steps), ("samples", samples), ("tokens", tokens)):
            if amount:
                self._work[unit] = self._work.get(unit, 0) + _work_count(unit, amount)

    def set_work(self, *, steps: int | None = None, samples: int | None = None, tokens: int | None = None) -> None:
        """Say the run's totals so far (as frameworks count them: global over every process)."""
        for unit, amount in (("steps", steps), ("samples", samples), ("tokens", tokens)):
            if amount is not None:
                self._work[unit] = _work_count(unit, amount)

    @property
    def work(self) -> dict[str, int]:
        """The units of work ``close_run`` reports: what was added or set, and the steps marked when none
        were reported otherwise."""
        work = dict(self._work)
        if "steps" not in work and self._step:
            work["steps"] = self._step
        return work

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Bracket a stage of the step (``forward``, ``backward``, ...) with begin/end markers."""
        if self._entered and not self.measuring:
            yield  # another process measures: no marker, and no reason to wait for the GPU
            return
        cuda_synchronize()
        self._mark("stage_begin", stage=name)
        backend = self._backend
        if backend is not None:
            backend.begin_computation(name)
        try:
            yield
        finally:
            if backend is not None:
                backend.end_computation(name)  # an emulated GPU stretches it to its profiled time here
            cuda_synchronize()
            self._mark("stage_end", stage=name)

    def energy_so_far(self) -> RunEnergy | None:
        """The energy measured so far, to the last reading: ``.energy_j`` per device UUID, ``.total_energy_j``,
        ``.components_j``, ``.duration_s``, ``.steps``, ``.energy_per_step_j``, ``.emissions_g`` (with a zone or
        region). Cheap and thread-safe: for a training callback's logs at every logging step. None in a
        process that leaves the measuring to local rank 0 (``ranks="node"``)."""
        if self._entered and not self.measuring:
            return None
        if self.streamer is None:
            raise RuntimeError("use the Tracker as a context manager: with Tracker(...) as tracker")
        return self.streamer.energy_so_far()

    def event(self, kind: str, fields: Mapping[str, str | int | float]) -> None:
        """Record a marker ``kind`` with scalar ``fields`` in the run's stream, now (thread-safe). The plan
        client takes it as ``on_event`` (``FrequencyPlanClient(..., on_event=tracker)``), as the power-limit
        optimiser does; a marker the app would refuse raises ``WireError`` here."""
        self._mark(kind, **fields)

    def _mark(self, kind: str, **fields: str | int | float) -> None:
        if self._entered and not self.measuring:
            return
        if self.streamer is None:
            raise RuntimeError("use the Tracker as a context manager: with Tracker(...) as tracker")
        self.streamer.mark(kind, **fields)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.power_limit is not None:
            self.power_limit.close()  # the default limit again, before the last window is read
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if self.streamer is not None:
                self.summary = self.streamer.close(work=self.work)
        finally:
            for owned in self._owned:
                close = getattr(owned, "close", None)
                if close is not None:
                    close()


def _work_count(unit: str, amount: int) -> int:
    """A count of work, refused here (not at close, when it is too late to tell) when it is not one."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"{unit}: expected a non-negative whole number, got {amount!r}")
    return amount
