"""The machine line the benchmark tables record, and the process-memory readings the peak-RSS
measurements share."""

from __future__ import annotations

import ctypes
import gc
import platform


def cpu_model(default: str = "") -> str:
    """The CPU's model name from /proc/cpuinfo, else ``default`` or platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default or platform.processor() or platform.machine()


def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM, VmSize, ...)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def trim_heap() -> None:
    """Collects garbage and hands freed heap pages back to the OS (glibc malloc_trim)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # pragma: no cover - not glibc
        pass
