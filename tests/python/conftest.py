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
