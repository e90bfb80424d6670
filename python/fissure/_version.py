from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("fissure")
    except PackageNotFoundError:  # running from a source tree
        from ._core import __version__  # type: ignore[no-redef]
except ImportError:  # pragma: no cover
    __version__ = "0+unknown"
