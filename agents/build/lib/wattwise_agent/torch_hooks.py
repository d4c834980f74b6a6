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
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

from wattwise_agent.backends.base import GpuBackend
from wattwise_agent.spool import DiskSpool, MemorySpool, Spool, default_spool_dir
from wattwise_agent.streamer import Streamer, StreamSummary
from wattwise_agent.torch_cuda import cuda_synchronize
from wattwise_agent.transport import Transport, transport_for

log = logging.getLogger(__name__)


class Tracker:
    """A context manager streaming this process's GPUs for ``run``, with step and stage markers.

    ``backend``: ``"nvml"`` (default), ``"simulated"``, or a GpuBackend. ``transport``: default HTTP(S) to
    the app at ``url`` / ``$WATTWISE_URL`` (or, on a trusted network, the broker at ``broker_url`` /
    ``$WATTWISE_BROKER_URL``) with a disk spool; pass one (e.g. ``MemoryTransport``) to keep everything
    in-process. ``gpus``: NVML selectors (default
    ``CUDA_VISIBLE_DEVICES``) or, for the simulated backend, a count.
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
    ) -> None:
        self.run = run
        self._zone, self._region = zone, region
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
        self._owned: list[object] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._step = 0
        self.streamer: Streamer | None = None
        self.summary: StreamSummary | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> Tracker:
        import socket

        node = self._node or socket.gethostname()
        token = self._token or os.environ.get("WATTWISE_TOKEN")
        if not token:
            raise ValueError("no node token: pass token= or set WATTWISE_TOKEN")
        backend = self._make_backend(node)
        transport = self._transport
        spool: Spool
        if transport is None:
            try:
                made = transport_for(self._url or os.environ.get("WATTWISE_URL"),
                                     self._broker_url or os.environ.get("WATTWISE_BROKER_URL"),
                                     ca_bundle=os.environ.get("WATTWISE_CA_BUNDLE") or None)
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
            zone=self._zone, region=self._region,
        )
        self.streamer.open()
        self._thread = threading.Thread(target=self._sample, name="wattwise-sampler", daemon=True)
        self._thread.start()
        return self

    def _make_backend(self, node: str) -> GpuBackend:
        spec = self._backend_spec
        if isinstance(spec, GpuBackend):
            return spec
        if spec == "simulated":
            from wattwise_agent.backends.simulated import SimulatedBackend

            count = self._gpus if isinstance(self._gpus, int) else 1
            # Real markers come from this process: the simulator's own step markers would duplicate them.
            backend: GpuBackend = SimulatedBackend(count, node=node, seed=self._seed, step_events=False)
        elif spec == "nvml":
            from wattwise_agent.backends.nvml import NvmlBackend

            selectors = None if self._gpus is None or isinstance(self._gpus, int) else list(self._gpus)
            backend = NvmlBackend(selectors)
        else:
            raise ValueError(f"unknown backend {spec!r}: use 'nvml', 'simulated' or a GpuBackend")
        self._owned.append(backend)
        return backend

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

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Bracket a stage of the step (``forward``, ``backward``, ...) with begin/end markers."""
        cuda_synchronize()
        self._mark("stage_begin", stage=name)
        try:
            yield
        finally:
            cuda_synchronize()
            self._mark("stage_end", stage=name)

    def _mark(self, kind: str, **fields: str | int | float) -> None:
        if self.streamer is None:
            raise RuntimeError("use the Tracker as a context manager: with Tracker(...) as tracker")
        self.streamer.mark(kind, **fields)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if self.streamer is not None:
                self.summary = self.streamer.close()
        finally:
            for owned in self._owned:
                close = getattr(owned, "close", None)
                if close is not None:
                    close()
