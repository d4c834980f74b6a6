"""Fixtures for the Perseus planner tests (no Django needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.perseus import Profile, load_profile
from tests.planner.perseus.perseus_helpers import GPT3_PROFILE


@pytest.fixture(scope="session")
def gpt3_profile() -> Profile:
    """The Perseus artifact's GPT-3 175B A100 SXM 8-stage profile."""
    return load_profile(GPT3_PROFILE)


@pytest.fixture(scope="session")
def gpt3_profile_path() -> Path:
    return GPT3_PROFILE
