"""The pipeline itself: a small transformer cut into stages, and messages between stages
that carry the emulated GPUs' virtual time.

Each process (one pipeline stage, one emulated GPU) keeps its own :class:`VirtualTime`: it moves only while
the emulated GPU computes (each forward and backward lasts its profiled time at the clock it runs at) and
when the stage waits for a peer. Every activation and gradient travels with the virtual time its
computation finished at; the receiving stage's time becomes ``max(own, sender's + communication)`` before
it computes with it, so the pipeline's timeline is the planner's DAG exactly (communication 0 by default,
as the planner assumes), however busy the machine is. At the end of an iteration the stages agree on its
end (the latest stage's time): the pipeline's synchronous flush (``Links.flush``; ``train.py``'s
``Stage.iteration`` then runs the plan client's ``sync``, where the emulated GPU waits for a straggler
pipeline, in the same virtual time). Waiting is charged at the emulated GPU's blocking power (it draws that
between computations).

With ``speed`` the processes also keep real time with virtual time (``speed`` virtual seconds per real
second), so the Tracker's samples, read in real time, see plausible power; ``speed=None`` runs as fast as
the CPUs go. Either way the figures are the virtual ones.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


class VirtualTime:
    """One stage's emulated-GPU time (seconds); see the module text."""

    def __init__(self, speed: float | None = None) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be positive virtual seconds per real second, got {speed!r}")
        self.speed = speed
        self.now_s = 0.0
        self._lock = threading.Lock()
        self._waiting_from_s: float | None = None  # while a paced wait runs: the time it began at
        self._real_start_s = time.monotonic()

    def timer(self) -> float:
        """Now. While a paced wait runs, another thread asking (the Tracker's sampler reading the emulated GPU)
        sees the time move on with real time towards the wait's end, so it reads the power drawn meanwhile
        (a stretched computation's, or blocking) rather than the state at the wait's end."""
        with self._lock:
            if self._waiting_from_s is None or self.speed is None:
                return self.now_s
            paced_s = (time.monotonic() - self._real_start_s) * self.speed
            return min(max(paced_s, self._waiting_from_s), self.now_s)

    def sleep(self, seconds: float) -> None:
        self.advance_to(self.now_s + max(seconds, 0.0))

    def advance_to(self, t_s: float) -> None:
        """Wait (virtually) until ``t_s``: nothing happens if it has already passed."""
        with self._lock:
            from_s = self.now_s
            if t_s > from_s:
                self.now_s = t_s
            if self.speed is None:
                return
            ahead_s = self.now_s / self.speed - (time.monotonic() - self._real_start_s)
            if ahead_s > 0:
                self._waiting_from_s = from_s
        if ahead_s > 0:
            time.sleep(ahead_s)
            with self._lock:
                self._waiting_from_s = None

    def keep_pace_from_now(self) -> None:
        """Keep real time with virtual time from now on, not from when this clock was made: starting the
        Tracker, fetching a plan, take real seconds the iterations would otherwise rush through unpaced."""
        with self._lock:
            if self.speed is not None:
                self._real_start_s = time.monotonic() - self.now_s / self.speed


# --- the model ------------------------------------------------------------------------------------------

VOCAB, SEQ, D_MODEL, HEADS = 32, 16, 32, 2


@dataclass(frozen=True)
class Shape:
    microbatch: int  # sequences per microbatch

    @property
    def activation(self) -> tuple[int, int, int]:
        return (self.microbatch, SEQ, D_MODEL)


def transformer_stage(stage: int, stages: int, layers_per_stage: int = 1) -> nn.Module:
    """Stage ``stage`` of a small causal transformer: the first embeds tokens, the last predicts the next one."""
    torch.manual_seed(100 + stage)
    parts: list[nn.Module] = []
    if stage == 0:
        parts.append(Embed())
    parts += [nn.TransformerEncoderLayer(D_MODEL, HEADS, dim_feedforward=2 * D_MODEL, dropout=0.0, batch_first=True)
              for _ in range(layers_per_stage)]
    if stage == stages - 1:
        parts.append(nn.Linear(D_MODEL, VOCAB))
    return nn.Sequential(*parts)


class Embed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, D_MODEL)
        self.positions = nn.Parameter(torch.zeros(SEQ, D_MODEL))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.tokens(tokens) + self.positions


def batch(step: int, microbatches: int, shape: Shape) -> torch.Tensor:
    """Token sequences that count up from a random start (mod VOCAB): the next token is learnable."""
    generator = torch.Generator().manual_seed(step)
    start = torch.randint(0, VOCAB, (microbatches * shape.microbatch, 1), generator=generator)
    return ((start + torch.arange(SEQ + 1)) % VOCAB).view(microbatches, shape.microbatch, SEQ + 1)


# --- messages between stages, with their virtual time ----------------------------------------------------


class Links:
    """Activations forward, gradients backward, each with the virtual time its computation finished at."""

    def __init__(self, stage: int, stages: int, clock: VirtualTime, communication_s: float = 0.0) -> None:
        self.stage, self.stages, self.clock, self.communication_s = stage, stages, clock, communication_s
        self._pending: list[dist.Work] = []

    def send(self, tensor: torch.Tensor, *, to: int, microbatch: int, gradient: bool) -> None:
        tag = 4 * microbatch + (2 if gradient else 0)
        stamp = torch.tensor([self.clock.now_s], dtype=torch.float64)
        payload = tensor.detach().contiguous()
        works = [dist.isend(payload, to, tag=tag), dist.isend(stamp, to, tag=tag + 1)]
        self._pending += [w for w in works if w is not None]  # None: not in the group (never, here)

    def receive(self, shape: tuple[int, ...], *, source: int, microbatch: int, gradient: bool) -> torch.Tensor:
        tag = 4 * microbatch + (2 if gradient else 0)
        tensor, stamp = torch.empty(shape), torch.empty(1, dtype=torch.float64)
        dist.recv(tensor, source, tag=tag)
        dist.recv(stamp, source, tag=tag + 1)
        self.clock.advance_to(float(stamp.item()) + self.communication_s)
        return tensor

    def flush(self) -> None:
        """Wait for every send to complete, then agree on the iteration's end (the latest stage's time)."""
        for work in self._pending:
            work.wait()
        self._pending.clear()
        latest = torch.tensor([self.clock.now_s], dtype=torch.float64)
        dist.all_reduce(latest, op=dist.ReduceOp.MAX)
        self.clock.advance_to(float(latest.item()))
