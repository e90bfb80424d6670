from __future__ import annotations

import collections
import os

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator; FISSURE_TEST_SEED overrides the seed."""
    return np.random.default_rng(int(os.environ.get("FISSURE_TEST_SEED", "20261123")))


@pytest.fixture
def twin_calls(monkeypatch: pytest.MonkeyPatch) -> collections.Counter:
    """Counts calls of the numpy twins (fissure._reference) by name, so that a test of
    ``FISSURE_BACKEND=python`` sees that the public function really was routed to its twin
    (and not to the core, which gives the same answer)."""
    import fissure._reference as ref

    calls: collections.Counter = collections.Counter()
    twins = {ref.merge: ("nms", "nmm", "greedy_nmm"),
             ref.specular: ("specular_mask", "dilate_disc", "glare_fraction")}
    for module, names in twins.items():
        for name in names:
            real = getattr(module, name)

            def counted(*args: object, _real=real, _name=name, **kwargs: object) -> object:
                calls[_name] += 1
                return _real(*args, **kwargs)

            monkeypatch.setattr(module, name, counted)
    return calls


# Hypothesis profiles for the property tests (tests/python/test_properties_*.py):
#   "ci" (default): deterministic (derandomize), a short budget per test;
#   "sanitize": the same, smaller (tools/sanitize.sh, under ASan/UBSan);
#   "fuzz": random examples, a long budget: FISSURE_FUZZ=1 pytest tests/python/test_properties_*.py
# FISSURE_HYPOTHESIS_PROFILE names a profile explicitly.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass
else:
    _common = dict(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],
    )
    settings.register_profile("ci", derandomize=True, max_examples=60, database=None,
                              print_blob=True, **_common)
    settings.register_profile("sanitize", derandomize=True, max_examples=15, database=None,
                              print_blob=True, **_common)
    settings.register_profile("fuzz", max_examples=2000, **_common)
    settings.load_profile(
        os.environ.get("FISSURE_HYPOTHESIS_PROFILE")
        or ("fuzz" if os.environ.get("FISSURE_FUZZ") == "1" else "ci")
    )
