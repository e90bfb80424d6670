"""Benchmarks import their helpers (_data, _impls, _harness) from this folder."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
