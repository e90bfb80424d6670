"""Ctrl-C stops the long core calls: knn_search and kcenter_greedy (plain and pruned passes)
raise KeyboardInterrupt soon after SIGINT, their worker threads finish, and the next call
works. Each case runs in a fresh interpreter that sends itself SIGINT after 0.5 s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

_SCRIPT = r"""
import json, os, signal, sys, threading, time
import numpy as np
import fissure
from fissure import _core

rng = np.random.default_rng(0)
X = rng.standard_normal((200_000, 256), dtype=np.float32)
Q = rng.standard_normal((50_000, 256), dtype=np.float32)
calls = {
    "knn": lambda: fissure.knn_search(X, Q, 1),
    "kcenter": lambda: fissure.kcenter_greedy(X, 40_000),
    "kcenter_plain": lambda: _core._kcenter_greedy_opts(X, 40_000, 0, -1, 0, 0),
    "kcenter_pruned": lambda: _core._kcenter_greedy_opts(X, 40_000, 0, -1, 1, 0),
}
out = {}
for name in sys.argv[1:]:
    sent = []
    timer = threading.Timer(0.5, lambda: (sent.append(time.perf_counter()),
                                          os.kill(os.getpid(), signal.SIGINT)))
    t0 = time.perf_counter()
    timer.start()
    try:
        calls[name]()
        out[name] = {"interrupted": False, "elapsed": time.perf_counter() - t0}
    except KeyboardInterrupt:
        out[name] = {"interrupted": True, "after_signal": time.perf_counter() - sent[0]}
    timer.join()
    # the core still works: its pool threads finished cleanly
    D, I = fissure.knn_search(X[:500], X[:20], 1)
    assert (I[:, 0] == np.arange(20)).all()
    assert fissure.kcenter_greedy(X[:300], 5).shape == (5,)
print(json.dumps(out))
"""


def default_sigint() -> None:
    """The child's SIGINT back to the default disposition: a test runner started in the
    background (``cmd &`` in a non-interactive shell) ignores SIGINT, an ignored SIGINT is
    inherited, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("calls", [["knn", "kcenter"], ["kcenter_plain", "kcenter_pruned"]])
def test_sigint_raises_keyboard_interrupt_promptly(calls: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-c", _SCRIPT, *calls], capture_output=True, text=True,
                       timeout=300, env=env, preexec_fn=default_sigint)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    for name in calls:
        r = out[name]
        # Each call takes several seconds (tens on a small machine) when not interrupted.
        assert r["interrupted"], f"{name} ran to completion in {r['elapsed']:.2f} s"
        assert r["after_signal"] < 1.5, f"{name}: KeyboardInterrupt {r['after_signal']:.2f} s late"
