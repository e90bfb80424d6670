"""The machine line the benchmark tables record."""

from __future__ import annotations

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
