"""The per-stage profiler: real torch loops on the simulator, and clock sweeps against a fake NVML."""

from __future__ import annotations

from typing import Any

import pytest

from tests.agents.fake_nvml import FakeGpu, FakeNvml
from tests.agents.fake_stage import FakeStage
from wattwise_agent.backends.clocks import ClockControlError
from wattwise_agent.backends.nvml import NvmlBackend
from wattwise_agent.clock_guard import ALLOW_CLOCK_CHANGES_ENV, ClockChangesRefused
from wattwise_agent.profile_csv import check_profile_csv, merge_profile_csvs, parse_rows
from wattwise_agent.profiling import ProfilerError, StageProfiler, measure_blocking_power_w

ALLOWED = {ALLOW_CLOCK_CHANGES_ENV: "1"}
FORWARD_MCYCLES, BACKWARD_MCYCLES = 19.8, 39.6


def fake_stage(**gpu: object) -> tuple[FakeNvml, FakeStage, NvmlBackend]:
    nvml = FakeNvml([FakeGpu("GPU-stage-0", **gpu)])  # type: ignore[arg-type]
    backend = NvmlBackend(["0"], nvml=nvml, environ={})
    return nvml, FakeStage(nvml.gpus[0]), backend


def run_fake_training(profiler: StageProfiler, stage: FakeStage, steps: int, microbatches: int = 2) -> None:
    for _ in range(steps):
        with profiler.step():
            for _ in range(microbatches):
                with profiler.instruction("forward"):
                    stage.compute(FORWARD_MCYCLES)
                stage.idle(0.002)  # pipeline communication: not part of any computation
            for _ in range(microbatches):
                with profiler.instruction("backward"):
                    stage.compute(BACKWARD_MCYCLES)


def tiny_stage_step(model: Any, optimizer: Any, profiler: StageProfiler, inputs: Any, targets: Any,
                    microbatches: int = 2) -> None:
    """One training step of a tiny CPU model, split into microbatches like a pipeline stage's."""
    import torch

    with profiler.step():
        losses = []
        for chunk_in, chunk_out in zip(torch.chunk(inputs, microbatches), torch.chunk(targets, microbatches)):
            with profiler.instruction("forward"):
                losses.append(torch.nn.functional.mse_loss(model(chunk_in), chunk_out))
        optimizer.zero_grad()
        for loss in losses:
            with profiler.instruction("backward"):
                loss.backward()
        optimizer.step()


@pytest.mark.app
@pytest.mark.torch
def test_a_real_torch_loop_on_the_simulated_backend_gives_a_profile_the_planner_parses() -> None:
    import torch

    from planner import perseus

    torch.manual_seed(0)
    profiles = []
    for stage in (0, 1):
        model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        inputs, targets = torch.randn(4096, 128), torch.randn(4096, 128)
        with StageProfiler(stage, backend="simulated", warmup_steps=1, measure_steps=3) as profiler:
            assert profiler.dry_run and profiler.frequencies_mhz == [None] and profiler.planned_steps == 4
            for _ in range(profiler.planned_steps):
                tiny_stage_step(model, optimizer, profiler, inputs, targets, microbatches=4)
            assert profiler.done
            tiny_stage_step(model, optimizer, profiler, inputs, targets)  # after the sweep: costs nothing
        profile = profiler.result()
        assert profile.dry_run and profile.simulated and profile.complete
        assert any("dry run" in note for note in profile.notes)
        assert [(r.instruction, r.count) for r in profile.rows] == [("forward", 12), ("backward", 12)]
        assert all(r.time_s > 0 and r.energy_j > 0 for r in profile.rows)
        profiles.append(profile)
    assert perseus.parse_profile(profiles[0].to_csv()).num_stages == 1
    # Each rank profiles its own stage; merged, they are one pipeline's profile.
    merged = merge_profile_csvs([p.to_csv() for p in profiles])
    whole = perseus.parse_profile(merged.csv)
    assert whole.num_stages == 2
    forward = whole.get(1, "forward")
    assert forward.time_s[0] == pytest.approx(profiles[1].rows[0].time_s)


def test_a_dry_run_never_calls_a_clock_setting_function_even_where_clocks_may_change() -> None:
    nvml, stage, backend = fake_stage()
    with StageProfiler(0, backend=backend, environ=ALLOWED, synchronize=stage.synchronize, timer=stage.timer,
                       warmup_steps=1, measure_steps=2) as profiler:
        run_fake_training(profiler, stage, profiler.planned_steps)
    assert nvml.clock_calls == []
    profile = profiler.result()
    assert profile.dry_run and profile.frequencies_mhz == (1980,)  # the clock the GPU reported
    assert not profile.simulated and profile.gpu_name == "NVIDIA H100 80GB HBM3"
    forward = profile.rows[0]
    assert forward.time_s == pytest.approx(FORWARD_MCYCLES / 1980)
    assert forward.energy_j == pytest.approx(stage.energy_j(FORWARD_MCYCLES, 1980), rel=1e-3)


def test_with_permission_twice_over_it_sweeps_the_supported_clocks_downwards_and_resets_them() -> None:
    nvml, stage, backend = fake_stage(graphics_clocks_mhz=[1980, 1500, 1200, 1005, 900, 800, 600])
    with StageProfiler(3, backend=backend, allow_clock_changes=True, environ=ALLOWED,
                       synchronize=stage.synchronize, timer=stage.timer, warmup_steps=1, measure_steps=2) as profiler:
        assert profiler.frequencies_mhz == [1980, 1500, 1200, 1005, 900]  # down to the 850 MHz floor
        run_fake_training(profiler, stage, profiler.planned_steps)
        assert profiler.done and profiler.current_freq_mhz is None
    locks = [(call[0], call[2]) for call in nvml.clock_calls if call[0] == "lock"]
    assert locks == [("lock", f) for f in (1980, 1500, 1200, 1005, 900)]
    assert all(call[2] == call[3] for call in nvml.clock_calls if call[0] == "lock")  # min = max
    assert nvml.clock_calls[-1] == ("reset", "GPU-stage-0")
    profile = profiler.result()
    assert not profile.dry_run and profile.complete and not profile.stopped_early
    backward = [row for row in parse_rows(profile.to_csv()) if row[1] == "backward"]  # the CSV as written
    assert [freq for _, _, freq, _, _ in backward] == [1980, 1500, 1200, 1005, 900]
    for stage_index, _, freq, time_s, energy_j in backward:
        assert stage_index == 3
        assert time_s == pytest.approx(BACKWARD_MCYCLES / freq)
        assert energy_j == pytest.approx(stage.energy_j(BACKWARD_MCYCLES, freq), rel=1e-3)


def test_the_sweep_stops_early_once_energy_rises_five_times_in_a_row_past_half_of_the_clocks() -> None:
    nvml, stage, backend = fake_stage()  # H100-like: 1980 down to 210 MHz in 15 MHz steps
    with StageProfiler(0, backend=backend, allow_clock_changes=True, environ=ALLOWED, min_freq_mhz=600,
                       synchronize=stage.synchronize, timer=stage.timer, warmup_steps=0, measure_steps=1) as profiler:
        run_fake_training(profiler, stage, profiler.planned_steps, microbatches=1)
    profile = profiler.result()
    assert profile.stopped_early and profile.complete
    freqs = list(profile.frequencies_mhz)
    # Energy per microbatch is lowest near 1247 MHz for this stage; five rises below it end the sweep.
    assert freqs[0] == 1980 and freqs == list(range(1980, freqs[-1] - 1, -15))
    assert 1100 < freqs[-1] < 1247
    energy = {f: sum(r.energy_j for r in profile.rows if r.freq_mhz == f) for f in freqs}
    last_six = [energy[f] for f in freqs[-6:]]
    assert last_six == sorted(last_six) and len(set(last_six)) == 6
    assert [c[2] for c in nvml.clock_calls if c[0] == "lock"] == freqs
    assert nvml.clock_calls[-1][0] == "reset"
    assert check_profile_csv(profile.to_csv()).frequencies_mhz == tuple(freqs)


@pytest.mark.app
def test_the_planner_reads_a_clock_sweep_as_the_agent_measured_it() -> None:
    from planner import perseus

    _, stage, backend = fake_stage(graphics_clocks_mhz=[1980, 1500, 1200, 1005, 900])
    with StageProfiler(3, backend=backend, allow_clock_changes=True, environ=ALLOWED, synchronize=stage.synchronize,
                       timer=stage.timer, warmup_steps=1, measure_steps=2) as profiler:
        run_fake_training(profiler, stage, profiler.planned_steps)
    profile = profiler.result()
    parsed = perseus.parse_profile(profile.to_csv().replace("\n3,", "\n0,"))  # alone, stage 3 is stage 0
    assert parsed.frequencies_mhz == profile.frequencies_mhz == (1980, 1500, 1200, 1005, 900)
    for instruction in ("forward", "backward"):
        read = parsed.get(0, instruction)
        rows = sorted((r for r in profile.rows if r.instruction == instruction), key=lambda r: -r.freq_mhz)
        assert read.freq_mhz == tuple(r.freq_mhz for r in rows)
        assert list(read.time_s) == [r.time_s for r in rows]
        assert list(read.energy_j) == [r.energy_j for r in rows]


def test_asking_for_clock_changes_without_the_environment_variable_is_refused_clearly() -> None:
    nvml, _, backend = fake_stage()
    with pytest.raises(ClockChangesRefused, match=f"{ALLOW_CLOCK_CHANGES_ENV} is unset on this machine"):
        StageProfiler(0, backend=backend, allow_clock_changes=True, environ={})
    with pytest.raises(ClockChangesRefused, match="is '0'"):
        StageProfiler(0, backend=backend, allow_clock_changes=True, environ={ALLOW_CLOCK_CHANGES_ENV: "0"})
    with pytest.raises(ClockChangesRefused, match="no clock control"):
        StageProfiler(0, backend="simulated", allow_clock_changes=True, environ=ALLOWED)
    assert nvml.clock_calls == []


def test_clocks_are_reset_when_training_fails_mid_sweep() -> None:
    nvml, stage, backend = fake_stage()
    with pytest.raises(RuntimeError, match="out of memory"), StageProfiler(
        0, backend=backend, allow_clock_changes=True, environ=ALLOWED, synchronize=stage.synchronize,
        timer=stage.timer, warmup_steps=1, measure_steps=1,
    ) as profiler:
        run_fake_training(profiler, stage, 3)
        raise RuntimeError("CUDA out of memory")
    assert [c[0] for c in nvml.clock_calls] == ["lock", "lock", "reset"]
    assert profiler.result().frequencies_mhz == (1980,)  # what finished is still usable
    assert not profiler.result().complete


def test_a_missing_permission_names_root_or_cap_sys_admin() -> None:
    _, stage, backend = fake_stage(clock_permission=False)
    with StageProfiler(0, backend=backend, allow_clock_changes=True, environ=ALLOWED, timer=stage.timer,
                       synchronize=stage.synchronize) as profiler, \
            pytest.raises(ClockControlError, match="root or CAP_SYS_ADMIN"):
        profiler.on_step_begin()


def test_only_supported_clocks_can_be_asked_for() -> None:
    nvml, _, backend = fake_stage()
    with pytest.raises(ValueError, match=r"\[1411\] are not supported"):
        StageProfiler(0, backend=backend, allow_clock_changes=True, environ=ALLOWED, freqs_mhz=[1980, 1411])
    assert nvml.clock_calls == []


def test_hooks_used_out_of_order_get_clear_errors() -> None:
    _, stage, backend = fake_stage()
    with StageProfiler(0, backend=backend, timer=stage.timer, synchronize=stage.synchronize) as profiler:
        with pytest.raises(ProfilerError, match="outside a step"):
            profiler.on_instruction_begin("forward")
        with pytest.raises(ValueError, match="only forward, backward"):
            profiler.on_instruction_begin("optimizer")
        with pytest.raises(ProfilerError, match="no clock finished yet"):
            profiler.result()
        profiler.on_step_begin()
        with pytest.raises(ProfilerError, match="during the sweep"):
            profiler.measure_blocking_power(0.01)
        profiler.on_instruction_begin("forward")
        with pytest.raises(ProfilerError, match="inside 'forward'"):
            profiler.on_instruction_begin("backward")
        with pytest.raises(ProfilerError, match="open instruction is 'forward'"):
            profiler.on_instruction_end("backward")


def test_a_loop_without_backward_cannot_make_a_profile() -> None:
    _, stage, backend = fake_stage()
    with StageProfiler(0, backend=backend, timer=stage.timer, synchronize=stage.synchronize, warmup_steps=0,
                       measure_steps=1) as profiler, profiler.step(), profiler.instruction("forward"):
        stage.compute(FORWARD_MCYCLES)
    with pytest.raises(ProfilerError, match="no backward was measured"):
        profiler.result()


def test_blocking_power_is_the_mean_power_over_a_window() -> None:
    _, stage, backend = fake_stage()
    assert measure_blocking_power_w(backend, window_s=0.5, block=stage.idle, timer=stage.timer) == \
        pytest.approx(stage.static_w)
    with StageProfiler(0, backend="simulated") as simulated:
        watts = simulated.measure_blocking_power(window_s=0.2)
    assert 50 < watts < 800  # the simulator's H100s, idle or busy
    assert simulated.p_blocking_w == watts
