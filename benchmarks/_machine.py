"""The machine line the benchmark tables record (:func:`platform_line`, the one every suite
uses), the process-memory readings the peak-RSS measurements share, and the marked blocks the
scripts write into the docs."""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import platform
from typing import Optional

#: Display names of the packages the suites compare against (import name -> name).
_NAMES = {"cv2": "OpenCV", "skimage": "scikit-image", "sahi": "SAHI"}


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


def _version(module: str) -> str:
    try:
        m = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - report what is there
        return f"{_NAMES.get(module, module)} (missing)"
    v = m.get_version() if module == "openvino" else getattr(m, "__version__", "?")
    return f"{_NAMES.get(module, module)} {str(v).split('-')[0]}"


def versions(*modules: str) -> str:
    """``"onnxruntime 1.32.0, openvino 2026.4.1"``: the installed version of each module (import
    names; ``"(missing)"`` for one that does not import)."""
    return ", ".join(_version(m) for m in modules)


def platform_line(*modules: str, simd: Optional[str] = None) -> str:
    """The machine a benchmark ran on, in one line: CPU model, logical cores, RAM, OS, Python,
    numpy, fissure (version, compiler, and ``simd``: the SIMD path of the kernel measured, when
    given), then the versions of ``modules`` (the peers and runtimes of that suite)."""
    parts = [cpu_model(), f"{os.cpu_count()} logical cores"]
    try:
        with open("/proc/meminfo") as f:
            parts.append(f"{int(f.readline().split()[1]) / 1024**2:.0f} GB RAM")
    except (OSError, ValueError, IndexError):
        pass
    parts += [f"{platform.system()} {platform.machine()}", f"Python {platform.python_version()}",
              _version("numpy")]
    try:
        import fissure

        info = fissure.info()
        detail = f"SIMD path {simd}, {info['compiler']}" if simd else info["compiler"]
        parts.append(f"fissure {info['version']} ({detail})")
    except ImportError:
        parts.append("fissure (not importable)")
    line = ", ".join(parts)
    return f"{line}; {versions(*modules)}" if modules else line


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
