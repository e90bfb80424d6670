"""The machine line the benchmark tables record, the process-memory readings the peak-RSS
measurements share, and the marked blocks the scripts write into the docs."""

from __future__ import annotations

import ctypes
import gc
import os
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


def write_marked_block(path: str, tag: str, text: str, title: str) -> None:
    """Puts ``text`` between ``<!-- BEGIN tag -->`` and ``<!-- END tag -->`` in the markdown
    file ``path`` (replacing what is there), or appends a ``title`` section holding the
    marked block when the markers are not there yet. Written atomically."""
    begin, end = f"<!-- BEGIN {tag} -->", f"<!-- END {tag} -->"
    with open(path) as f:
        doc = f.read()
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc[doc.index(begin):]:
        i = doc.index(begin)
        j = doc.index(end, i) + len(end)
        doc = doc[:i] + block + doc[j:]
    else:
        doc = doc.rstrip("\n") + f"\n\n{title}\n\n{block}\n"
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(doc)
    os.replace(tmp, path)
