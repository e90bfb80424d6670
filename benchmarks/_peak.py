"""Peak memory of one call, measured in a fresh process.

    python benchmarks/_peak.py SUITE IMPL CASE      -> one JSON line on stdout

Method (the same for every library, numpy, numba, OpenCV or C++): build the inputs, warm
the implementation up, release free heap memory (``gc.collect`` and glibc
``malloc_trim(0)``), reset the kernel's peak-RSS counter (write ``5`` to
``/proc/self/clear_refs``), read ``VmRSS``, make the one call, then read ``VmHWM``. The
reported peak is ``VmHWM - VmRSS before``: every page the call touched beyond what the
process already held, whichever allocator asked for it. It can undercount memory the call
took from heap the process had already freed but kept (trimmed first to keep that small),
and it counts the result the call returns. Where ``clear_refs`` cannot be written, the
fallback is the ``ru_maxrss`` growth over the process's previous peak (reported as such).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import _impls  # noqa: E402
from _machine import status_kb, trim_heap  # noqa: E402




def measure(suite: str, key: str, case_name: str) -> dict:
    impl = _impls.find(suite, key)
    case = _impls.SUITES[suite][1](case_name)
    out = {"suite": suite, "impl": key, "case": case_name}
    reason = impl.skip(case)
    if reason:
        out["skipped"] = reason
        return out
    args = impl.prepare(case)
    trim_heap()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "VmHWM"
        before = status_kb("VmRSS")
    except OSError:  # pragma: no cover - no clear_refs (non-Linux, restricted)
        method = "ru_maxrss"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = impl.run(args)
    seconds = time.perf_counter() - t0
    if method == "VmHWM":
        peak = status_kb("VmHWM") - before
    else:  # pragma: no cover
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    out.update(
        peak_mb=max(peak, 0) / 1024.0, method=method, seconds=seconds,
        count=int(impl.count(result)), n=len(case), rss_before_mb=before / 1024.0,
    )
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    print(json.dumps(measure(*sys.argv[1:])))
