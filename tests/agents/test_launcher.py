"""What a launcher (torchrun, SLURM's srun, Open MPI's mpirun) tells a process, and which GPU it then drives."""

from __future__ import annotations

import pytest

from tests.agents.fake_nvml import FakeGpu, FakeNvml
from wattwise_agent.backends.base import BackendUnavailable
from wattwise_agent.backends.nvml import NvmlBackend
from wattwise_agent.launcher import Launch, detect_launch, ranks_mode, slurm_tasks_on_node

TORCHRUN = {"LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4", "RANK": "6", "WORLD_SIZE": "8", "GROUP_RANK": "1"}
SLURM = {"SLURM_LOCALID": "1", "SLURM_STEP_TASKS_PER_NODE": "4(x2),2", "SLURM_TASKS_PER_NODE": "8(x3)",
         "SLURM_PROCID": "9", "SLURM_NTASKS": "10", "SLURM_NODEID": "2"}
OPENMPI = {"OMPI_COMM_WORLD_LOCAL_RANK": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "8", "OMPI_COMM_WORLD_RANK": "11",
           "OMPI_COMM_WORLD_SIZE": "16"}


def uuid(n: int) -> str:
    return f"GPU-{n:08x}-1111-2222-3333-444455556666"


def test_no_launcher_no_launch() -> None:
    assert detect_launch({"CUDA_VISIBLE_DEVICES": "0,1"}) is None


def test_torchrun_says_local_rank_local_world_size_rank_world_size_and_node_rank() -> None:
    assert detect_launch(TORCHRUN) == Launch("torchrun", 2, 4, 6, 8, 1)


def test_open_mpi_says_local_rank_and_size() -> None:
    assert detect_launch(OPENMPI) == Launch("openmpi", 3, 8, 11, 16, None)


def test_slurm_takes_this_nodes_count_of_the_job_steps_tasks_per_node() -> None:
    assert detect_launch(SLURM) == Launch("slurm", 1, 2, 9, 10, 2)
    assert detect_launch({"SLURM_LOCALID": "0", "SLURM_NTASKS_PER_NODE": "4", "SLURM_TASKS_PER_NODE": "1"}) == (
        Launch("slurm", 0, 4))


@pytest.mark.parametrize(("text", "node_id", "tasks"), [
    ("4", None, 4), ("4(x3)", None, 4), ("2(x3),1", 3, 1), ("2(x3),1", 0, 2), ("2(x3),1", None, None),
])
def test_slurm_tasks_per_node_lists_are_read_for_this_node(text: str, node_id: int | None, tasks: int | None) -> None:
    assert slurm_tasks_on_node(text, node_id) == tasks


def test_torchrun_inside_a_slurm_job_step_is_torchruns_process() -> None:
    assert detect_launch({**SLURM, **TORCHRUN}) == Launch("torchrun", 2, 4, 6, 8, 1)
    assert detect_launch({**SLURM, **OPENMPI}) == Launch("openmpi", 3, 8, 11, 16, None)


def test_a_launcher_that_does_not_say_how_many_processes_share_the_node_leaves_it_unknown() -> None:
    launch = detect_launch({"LOCAL_RANK": "1", "RANK": "1"})
    assert launch == Launch("torchrun", 1, None, 1, None, None)
    assert launch.shares_node
    assert not Launch("torchrun", 0, 1).shares_node


@pytest.mark.parametrize(("environ", "says"), [
    ({"LOCAL_RANK": "one"}, "LOCAL_RANK='one' is not a whole number"),
    ({"LOCAL_RANK": ""}, "LOCAL_RANK='' is not a whole number"),
    ({"LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "4.0"}, "LOCAL_WORLD_SIZE='4.0' is not a whole number"),
    ({"LOCAL_RANK": "-1"}, "LOCAL_RANK='-1' is negative"),
    ({"LOCAL_RANK": "4", "LOCAL_WORLD_SIZE": "4"}, "local rank 4 is not below LOCAL_WORLD_SIZE=4"),
    ({"OMPI_COMM_WORLD_LOCAL_RANK": "x"}, "OMPI_COMM_WORLD_LOCAL_RANK='x' is not a whole number"),
    ({"SLURM_LOCALID": "0", "SLURM_NODEID": "n1"}, "SLURM_NODEID='n1' is not a whole number"),
    ({"SLURM_LOCALID": "0", "SLURM_STEP_TASKS_PER_NODE": "4(2)"},
     "SLURM_STEP_TASKS_PER_NODE='4(2)' is not a SLURM tasks-per-node list"),
])
def test_a_value_that_is_not_a_whole_number_is_an_error_naming_the_variable(environ: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match="^" + says.replace("(", r"\(").replace(")", r"\)")):
        detect_launch(environ)


def test_ranks_mode_is_the_argument_else_the_environment_else_own() -> None:
    assert ranks_mode(None, {}) == "own"
    assert ranks_mode(None, {"WATTWISE_RANKS": "Node"}) == "node"
    assert ranks_mode("own", {"WATTWISE_RANKS": "node"}) == "own"
    with pytest.raises(ValueError, match="WATTWISE_RANKS='all': use 'own'"):
        ranks_mode(None, {"WATTWISE_RANKS": "all"})
    with pytest.raises(ValueError, match="ranks='': use 'own'"):
        ranks_mode("", {})


def four_gpus() -> FakeNvml:
    return FakeNvml([FakeGpu(uuid(i)) for i in range(4)])


@pytest.mark.parametrize(("visible", "local_rank", "gpu"), [
    (None, 2, 2),  # every GPU visible: the LOCAL_RANK-th, cuda:LOCAL_RANK
    ("3,1", 1, 1),  # several visible: the LOCAL_RANK-th of them
    (f"{uuid(0)},{uuid(3)}", 1, 3),
    ("2", 3, 2),  # one visible (the launcher bound one GPU to each process): that one
])
def test_a_ranks_gpu_is_the_local_rank_th_it_sees_or_the_only_one(visible: str | None, local_rank: int, gpu: int) -> None:
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    backend = NvmlBackend(nvml=four_gpus(), environ=environ, local_rank=local_rank)
    assert [g.uuid for g in backend.gpus] == [uuid(gpu)]


def test_a_local_rank_beyond_the_gpus_it_sees_is_an_error_not_a_guess() -> None:
    with pytest.raises(BackendUnavailable, match=r"local rank 2 but this process sees 2 GPUs \(CUDA_VISIBLE_DEVICES\)"):
        NvmlBackend(nvml=four_gpus(), environ={"CUDA_VISIBLE_DEVICES": "0,1"}, local_rank=2)
