"""Which process of a multi-process job this is, as its launcher says: torchrun, SLURM's srun, Open MPI.

A launcher starts one process per GPU and tells each its place in environment variables; read here once:

* torchrun (and ``torch.distributed.launch``): ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``RANK``,
  ``WORLD_SIZE``, ``GROUP_RANK`` (the node's rank).
* Open MPI (``mpirun``): ``OMPI_COMM_WORLD_LOCAL_RANK``, ``OMPI_COMM_WORLD_LOCAL_SIZE``,
  ``OMPI_COMM_WORLD_RANK``, ``OMPI_COMM_WORLD_SIZE``.
* SLURM (``srun``): ``SLURM_LOCALID``, the tasks on this node from ``SLURM_STEP_TASKS_PER_NODE`` (the job
  step's), else ``SLURM_NTASKS_PER_NODE``, else ``SLURM_TASKS_PER_NODE`` (``2(x3),1``: one count per node,
  this node's by ``SLURM_NODEID``), ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_NODEID``.

The first launcher found in that order wins: torchrun started by srun, or mpirun inside a SLURM job, sets
its own variables on top of SLURM's, and its processes are the ones that train.

How the processes of one node share the measuring (``ranks``, or ``$WATTWISE_RANKS``):

* ``own`` (default): each process measures the one GPU it drives; together they measure the node once.
* ``node``: local rank 0 measures every GPU it sees; the other processes measure nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

RANKS_OWN = "own"
RANKS_NODE = "node"
RANKS_MODES = (RANKS_OWN, RANKS_NODE)
RANKS_ENV = "WATTWISE_RANKS"

_TASKS_PER_NODE_PART = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


@dataclass(frozen=True)
class Launch:
    """This process's place in a job, as the launcher (``torchrun``, ``slurm``, ``openmpi``) set it."""

    launcher: str
    local_rank: int
    local_world_size: int | None  # processes of the job on this node; None when the launcher does not say
    rank: int | None = None
    world_size: int | None = None
    node_rank: int | None = None

    @property
    def shares_node(self) -> bool:
        """Several processes of the job on this node (or the launcher does not say how many)."""
        return self.local_world_size is None or self.local_world_size > 1


def _int(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name)
    if text is None or not text.strip():
        return None
    return _whole(name, text)


def _local_rank(environ: Mapping[str, str], name: str) -> int:
    return _whole(name, environ.get(name, ""))


def _whole(name: str, text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number (a launcher sets it to one)") from None
    if value < 0:
        raise ValueError(f"{name}={text!r} is negative")
    return value


def slurm_tasks_on_node(text: str, node_id: int | None, name: str = "SLURM_TASKS_PER_NODE") -> int | None:
    """This node's count in SLURM's compressed per-node list (``4``, ``2(x3),1``); None if it cannot say."""
    counts: list[int] = []
    for part in text.split(","):
        match = _TASKS_PER_NODE_PART.match(part.strip())
        if match is None:
            raise ValueError(f"{name}={text!r} is not a SLURM tasks-per-node list (like 4 or 2(x3),1)")
        counts.extend([int(match.group(1))] * int(match.group(2) or 1))
    if len(set(counts)) == 1:
        return counts[0]
    if node_id is None or node_id >= len(counts):
        return None
    return counts[node_id]


def detect_launch(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launcher's view of this process, or None when no launcher started it.

    Raises ValueError naming the variable when one holds something other than a whole number.
    """
    env = os.environ if environ is None else environ
    launch: Launch | None = None
    if env.get("LOCAL_RANK") is not None:
        launch = Launch("torchrun", _local_rank(env, "LOCAL_RANK"), _int(env, "LOCAL_WORLD_SIZE"),
                        _int(env, "RANK"), _int(env, "WORLD_SIZE"), _int(env, "GROUP_RANK"))
        size_name = "LOCAL_WORLD_SIZE"
    elif env.get("OMPI_COMM_WORLD_LOCAL_RANK") is not None:
        launch = Launch("openmpi", _local_rank(env, "OMPI_COMM_WORLD_LOCAL_RANK"),
                        _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE"), _int(env, "OMPI_COMM_WORLD_RANK"),
                        _int(env, "OMPI_COMM_WORLD_SIZE"))
        size_name = "OMPI_COMM_WORLD_LOCAL_SIZE"
    elif env.get("SLURM_LOCALID") is not None:
        node_id = _int(env, "SLURM_NODEID")
        local_size: int | None = None
        size_name = "SLURM_TASKS_PER_NODE"
        for name in ("SLURM_STEP_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"):
            text = env.get(name)
            if text is not None and text.strip():
                local_size, size_name = slurm_tasks_on_node(text, node_id, name), name
                break
        launch = Launch("slurm", _local_rank(env, "SLURM_LOCALID"), local_size, _int(env, "SLURM_PROCID"),
                        _int(env, "SLURM_NTASKS"), node_id)
    if launch is None:
        return None
    if launch.local_world_size is not None and launch.local_rank >= launch.local_world_size:
        raise ValueError(f"local rank {launch.local_rank} is not below {size_name}={launch.local_world_size}")
    return launch


def ranks_mode(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``own`` or ``node``: the ``ranks`` given, else ``$WATTWISE_RANKS``, else ``own``."""
    env = os.environ if environ is None else environ
    value, source = (explicit, "ranks=") if explicit is not None else (env.get(RANKS_ENV), f"{RANKS_ENV}=")
    if value is None or (source != "ranks=" and not value.strip()):
        return RANKS_OWN
    mode = value.strip().lower()
    if mode not in RANKS_MODES:
        raise ValueError(f"{source}{value!r}: use 'own' (each process measures its GPU) or 'node' "
                         "(local rank 0 measures the node's GPUs)")
    return mode
