"""Synthetic GPU profiles with the shape of real ones, for tests, benchmarks and demos.

A GPU's compute time at SM frequency ``f`` has a frequency-bound part and a memory-bound part,
``t(f) = t_max·(α·f_max/f + 1 − α)``, and its power grows faster than linearly with frequency,
``P(f) = P_static + P_dynamic·(f/f_max)^k``. Energy is ``P(f)·t(f)``. With these, slowing a
computation down saves energy at a decreasing rate — the convex trade-off Perseus exploits.

Presets (shaped like the Perseus artifact's public A100 and A40 stage profiles):

* ``a100``: 38 clocks 1410 → 855 MHz in 15 MHz steps, forward 50 ms at f_max, α = 0.75 forward /
  0.70 backward, ``P = 90 W + 330 W·(f/f_max)^2.6``, backward twice the forward work;
* ``a40``: 60 clocks 1740 → 855 MHz, forward 112.5 ms and backward 2.46× forward at f_max (the
  GPT-3 175B A40 stage profile's figures), α = 0.50 forward / 0.45 backward,
  ``P = 170 W + 100 W·(f/f_max)^2.6``: a large static power makes clocks below about 1350 MHz
  cost more energy, as on real GPUs, so 8 stages × 96 microbatches at τ = 0.1 ms give about
  71,000 frontier points (the paper reports about 66,000 for its A40 profiles).

Stage 0 does 5 % more work and the last stage 20 % more (embedding and loss layers), and every
time and energy gets multiplicative Gaussian noise (0.3 % by default) from a seeded generator, so a
profile is reproducible from its arguments.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from planner.perseus.profile import Profile, parse_profile


@dataclass(frozen=True)
class GpuShape:
    """Parameters of a synthetic GPU (see module docstring)."""

    f_max_mhz: int
    f_min_mhz: int
    step_mhz: int
    forward_time_s: float
    backward_ratio: float
    alpha_forward: float
    alpha_backward: float
    p_static_w: float
    p_dynamic_w: float
    power_exponent: float


PRESETS: dict[str, GpuShape] = {
    "a100": GpuShape(1410, 855, 15, 0.050, 2.0, 0.75, 0.70, 90.0, 330.0, 2.6),
    "a40": GpuShape(1740, 855, 15, 0.1125, 2.46, 0.50, 0.45, 170.0, 100.0, 2.6),
}


def synthetic_profile_csv(
    num_stages: int,
    preset: str | GpuShape = "a100",
    *,
    noise: float = 0.003,
    seed: int = 0,
    first_stage_extra: float = 0.05,
    last_stage_extra: float = 0.20,
) -> str:
    """A synthetic profile as Perseus CSV text (see module docstring)."""
    shape = PRESETS[preset] if isinstance(preset, str) else preset
    rng = np.random.default_rng(seed)
    freqs = list(range(shape.f_max_mhz, shape.f_min_mhz - 1, -shape.step_mhz))
    out = io.StringIO()
    out.write("stage,instruction,frequency,time,energy\n")
    for stage in range(num_stages):
        work = 1.0
        if stage == 0:
            work += first_stage_extra
        if stage == num_stages - 1:
            work += last_stage_extra
        for f in freqs:
            ratio = f / shape.f_max_mhz
            power = shape.p_static_w + shape.p_dynamic_w * ratio**shape.power_exponent
            for instruction, scale, alpha in (
                ("forward", 1.0, shape.alpha_forward),
                ("backward", shape.backward_ratio, shape.alpha_backward),
            ):
                t_max = shape.forward_time_s * scale * work
                t = t_max * (alpha / ratio + 1.0 - alpha)
                e = power * t
                t *= 1.0 + noise * float(rng.standard_normal())
                e *= 1.0 + noise * float(rng.standard_normal())
                out.write(f"{stage},{instruction},{f},{t!r},{e!r}\n")
    return out.getvalue()


def synthetic_profile(
    num_stages: int, preset: str | GpuShape = "a100", *, noise: float = 0.003, seed: int = 0
) -> Profile:
    """A synthetic profile, parsed (see :func:`synthetic_profile_csv`)."""
    return parse_profile(synthetic_profile_csv(num_stages, preset, noise=noise, seed=seed))
