"""The iteration time–energy frontier and its compact storage.

A frontier is a list of *points*, slowest first. Point ``k`` has a planned iteration time
``time_s[k]`` (a whole number of units τ), a planned energy ``energy_j[k]`` (joules per iteration,
blocking included: ``Σ cost_i + S·T·P_blocking``), and a frequency plan: a duration, hence a
frequency, for every computation.

Storing thousands of full plans would be wasteful — consecutive points differ in a handful of
durations — so a frontier keeps the durations of the starting plan and, per point, only the
computations whose duration changed (by −1 or +1 unit). :meth:`Frontier.durations` replays them.
A frontier with 66,000 points over 1,536 computations takes a few megabytes.

:meth:`Frontier.to_bytes`/:meth:`Frontier.from_bytes` store it as a compressed ``.npz`` archive
(numpy arrays plus one JSON metadata entry; no pickles), suitable for a database ``BinaryField`` or
a file. Reading one back needs no profile: the cleaned options (frequency per duration) travel with it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from planner.perseus.dag import PipelineDag, build_dag
from planner.perseus.errors import FrontierFormatError, PlannerError
from planner.perseus.options import CandidateOptions, Mode
from planner.perseus.profile import INSTRUCTIONS
from planner.perseus.schedule import Schedule

FORMAT_VERSION = 1


@dataclass(frozen=True)
class PlanningProblem:
    """What to plan: pipeline shape, time unit τ, blocking power and semantics."""

    num_stages: int
    num_microbatches: int
    unit_time_s: float
    p_blocking_w: float
    schedule: Schedule = Schedule.ONE_F_ONE_B
    mode: Mode = Mode.DEFAULT

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "num_stages": self.num_stages,
            "num_microbatches": self.num_microbatches,
            "unit_time_s": self.unit_time_s,
            "p_blocking_w": self.p_blocking_w,
            "schedule": self.schedule.value,
            "mode": self.mode.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanningProblem:
        """Inverse of :meth:`to_dict`."""
        return cls(
            num_stages=int(data["num_stages"]),
            num_microbatches=int(data["num_microbatches"]),
            unit_time_s=float(data["unit_time_s"]),
            p_blocking_w=float(data["p_blocking_w"]),
            schedule=Schedule(data["schedule"]),
            mode=Mode(data["mode"]),
        )


def _options_to_dict(o: CandidateOptions) -> dict[str, Any]:
    return {
        "stage": o.stage,
        "instruction": o.instruction,
        "quant_time": list(o.quant_time),
        "freq_mhz": list(o.freq_mhz),
        "time_s": list(o.time_s),
        "energy_j": list(o.energy_j),
        "cost_j": list(o.cost_j),
        "noise_factor": o.noise_factor,
    }


def _options_from_dict(data: dict[str, Any], unit_time_s: float) -> CandidateOptions:
    return CandidateOptions(
        stage=int(data["stage"]),
        instruction=str(data["instruction"]),
        unit_time_s=unit_time_s,
        quant_time=tuple(int(x) for x in data["quant_time"]),
        freq_mhz=tuple(int(x) for x in data["freq_mhz"]),
        time_s=tuple(float(x) for x in data["time_s"]),
        energy_j=tuple(float(x) for x in data["energy_j"]),
        cost_j=tuple(float(x) for x in data["cost_j"]),
        noise_factor=float(data["noise_factor"]),
    )


class Frontier:
    """An iteration time–energy frontier with the frequency plan of every point.

    Build one with :func:`planner.perseus.planner.solve_frontier`.
    """

    def __init__(
        self,
        problem: PlanningProblem,
        options: dict[tuple[int, str], CandidateOptions],
        quant_times: npt.ArrayLike,
        costs_j: npt.ArrayLike,
        start_durations: npt.ArrayLike,
        delta_ptr: npt.ArrayLike,
        delta_ops: npt.ArrayLike,
        delta_signs: npt.ArrayLike,
        *,
        min_quant_time: int,
        max_quant_time: int,
        stop_reason: str,
        solve_time_s: float,
        profile_digest: str = "",
    ) -> None:
        self.problem = problem
        self.options = options
        self.quant_times = np.asarray(quant_times, dtype=np.int64)
        self.costs_j = np.asarray(costs_j, dtype=np.float64)
        self.start_durations = np.asarray(start_durations, dtype=np.int64)
        self.delta_ptr = np.asarray(delta_ptr, dtype=np.int64)
        self.delta_ops = np.asarray(delta_ops, dtype=np.int32)
        self.delta_signs = np.asarray(delta_signs, dtype=np.int8)
        self.min_quant_time = min_quant_time
        self.max_quant_time = max_quant_time
        self.stop_reason = stop_reason
        self.solve_time_s = solve_time_s
        self.profile_digest = profile_digest
        self._dag: PipelineDag | None = None

    # -- figures ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.quant_times)

    @property
    def dag(self) -> PipelineDag:
        """The computation DAG the frontier was planned on."""
        if self._dag is None:
            p = self.problem
            self._dag = build_dag(p.schedule, p.num_stages, p.num_microbatches)
        return self._dag

    @property
    def time_s(self) -> np.ndarray:
        """Planned iteration time of every point, seconds (``quant_time · τ``)."""
        return np.round(self.quant_times * self.problem.unit_time_s, 12)

    @property
    def energy_j(self) -> np.ndarray:
        """Planned iteration energy of every point, joules, blocking included.

        ``cost + S · (quant_time · τ) · P_blocking``, the artifact's "refined cost".
        """
        p = self.problem
        real_time = self.quant_times * p.unit_time_s
        return self.costs_j + p.num_stages * real_time * p.p_blocking_w

    def to_csv(self) -> str:
        """``time,energy`` rows, slowest first (the shape of the Perseus artifact's frontiers)."""
        lines = ["time,energy"]
        for t, e in zip(self.time_s.tolist(), self.energy_j.tolist(), strict=True):
            lines.append(f"{t!r},{e!r}")
        return "\n".join(lines) + "\n"

    # -- plans --------------------------------------------------------------------------------

    def _check_index(self, index: int) -> int:
        k = index + len(self) if index < 0 else index
        if not 0 <= k < len(self):
            raise PlannerError(f"frontier point {index} does not exist; the frontier has {len(self)} points")
        return k

    def durations(self, index: int) -> np.ndarray:
        """Planned duration (units of τ) of every computation at point ``index``."""
        k = self._check_index(index)
        end = int(self.delta_ptr[k + 1])
        change = np.bincount(
            self.delta_ops[:end], weights=self.delta_signs[:end], minlength=len(self.start_durations)
        )
        return self.start_durations + change.astype(np.int64)

    def option_indices(self, index: int) -> np.ndarray:
        """Index into each computation's :class:`CandidateOptions` at point ``index``."""
        durations = self.durations(index)
        out = np.empty(len(durations), dtype=np.int64)
        for i, comp in enumerate(self.dag.computations):
            out[i] = self.options[(comp.stage, comp.instruction)].option_for(int(durations[i]))
        return out

    def frequencies(self, index: int) -> list[int]:
        """Frequency (MHz) of every computation at point ``index``, in DAG numbering."""
        idx = self.option_indices(index)
        return [
            self.options[(comp.stage, comp.instruction)].freq_mhz[int(idx[i])]
            for i, comp in enumerate(self.dag.computations)
        ]

    # -- storage ------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """JSON-ready description (everything but the arrays)."""
        return {
            "format": "wattwise-perseus-frontier",
            "version": FORMAT_VERSION,
            "problem": self.problem.to_dict(),
            "min_quant_time": self.min_quant_time,
            "max_quant_time": self.max_quant_time,
            "stop_reason": self.stop_reason,
            "solve_time_s": self.solve_time_s,
            "profile_digest": self.profile_digest,
            "options": [_options_to_dict(self.options[(s, i)]) for s in range(self.problem.num_stages) for i in INSTRUCTIONS],
        }

    def to_bytes(self) -> bytes:
        """Compressed ``.npz`` bytes (see module docstring)."""
        buf = io.BytesIO()
        meta = np.frombuffer(json.dumps(self.metadata()).encode(), dtype=np.uint8)
        np.savez_compressed(
            buf,
            metadata=meta,
            quant_times=self.quant_times,
            costs_j=self.costs_j,
            start_durations=self.start_durations.astype(np.int32),
            delta_ptr=self.delta_ptr,
            delta_ops=self.delta_ops,
            delta_signs=self.delta_signs,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        """Read a frontier written by :meth:`to_bytes`."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(bytes(z["metadata"]).decode())
                arrays = {k: z[k] for k in z.files if k != "metadata"}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            raise FrontierFormatError(f"not a stored frontier: {e}") from None
        if meta.get("format") != "wattwise-perseus-frontier":
            raise FrontierFormatError("not a stored frontier (format marker missing)")
        if meta.get("version") != FORMAT_VERSION:
            raise FrontierFormatError(f"unsupported frontier format version {meta.get('version')}")
        try:
            problem = PlanningProblem.from_dict(meta["problem"])
            options = {
                (int(o["stage"]), str(o["instruction"])): _options_from_dict(o, problem.unit_time_s)
                for o in meta["options"]
            }
            return cls(
                problem,
                options,
                arrays["quant_times"],
                arrays["costs_j"],
                arrays["start_durations"],
                arrays["delta_ptr"],
                arrays["delta_ops"],
                arrays["delta_signs"],
                min_quant_time=int(meta["min_quant_time"]),
                max_quant_time=int(meta["max_quant_time"]),
                stop_reason=str(meta["stop_reason"]),
                solve_time_s=float(meta["solve_time_s"]),
                profile_digest=str(meta.get("profile_digest", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise FrontierFormatError(f"stored frontier is incomplete: {e}") from None
