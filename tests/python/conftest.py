from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator; FISSURE_TEST_SEED overrides the seed."""
    return np.random.default_rng(int(os.environ.get("FISSURE_TEST_SEED", "20261123")))
