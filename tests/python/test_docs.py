"""Every python block of README.md and docs/*.md runs as written, and every ``fissure.…`` name
the docs mention exists.

A block fenced ```python or ```py is run; a block fenced with any other language (``text``,
``json``, ``bash``) is not. The blocks of one file run in order in one fresh namespace (a later
block may use an earlier one's names), in a temporary working directory so that the files they
write do not land in the repository.
"""

from __future__ import annotations

import importlib
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = ("python", "py")

#: An opening fence (possibly indented, in a list), its info string, the body, the closing
#: fence at the same indentation.
FENCE = re.compile(r"^([ \t]*)```([^\n`]*)\n(.*?)^\1```[ \t]*$", re.S | re.M)


def blocks(path: Path) -> list[tuple[str, int, str]]:
    """(language, line of the opening fence, dedented code) of every fenced block."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        lang = m.group(2).strip().split()[0].lower() if m.group(2).strip() else ""
        line = text.count("\n", 0, m.start()) + 1
        out.append((lang, line, textwrap.dedent(m.group(3))))
    return out


def python_blocks(path: Path) -> list[tuple[int, str]]:
    return [(line, code) for lang, line, code in blocks(path) if lang in RUN]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


if not (ROOT / "docs").is_dir():  # pragma: no cover - an installed package without its docs
    pytest.skip("not running from a source checkout", allow_module_level=True)

WITH_CODE = [p for p in DOCS if python_blocks(p)]


@pytest.mark.parametrize("path", WITH_CODE, ids=_id)
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs:{path.name}"}
    for line, code in python_blocks(path):
        # A line-accurate file name: a traceback points at the doc's own line.
        code = "\n" * line + code
        exec(compile(code, str(path), "exec"), namespace)


def test_fences_pair_up() -> None:
    """Every fence is read as the opening or the closing of one block, so no python block is
    skipped by a stray or mis-indented fence."""
    for path in DOCS:
        fences = re.findall(r"^[ \t]*```", path.read_text(encoding="utf-8"), flags=re.M)
        assert 2 * len(blocks(path)) == len(fences), f"{_id(path)}: a ``` fence does not pair up"


#: ``fissure.a.b`` in prose and code: the module, class, function or attribute must exist.
NAME = re.compile(r"(?<![\w/.-])fissure(?:\.[A-Za-z_]\w*)+")


def _resolve(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            fields = getattr(obj, "__dataclass_fields__", {})
            if attr in fields and not hasattr(obj, attr):  # a dataclass field without default
                obj = None
                continue
            if obj is None or not hasattr(obj, attr):
                return obj is None and attr in fields
            obj = getattr(obj, attr)
        return True
    return False


def test_documented_names_exist() -> None:
    missing = []
    for path in DOCS:
        for m in NAME.finditer(path.read_text(encoding="utf-8")):
            name = m.group(0)
            if not _resolve(name):
                line = path.read_text(encoding="utf-8").count("\n", 0, m.start()) + 1
                missing.append(f"{_id(path)}:{line}: {name}")
    assert not missing, "names the docs mention that do not exist:\n" + "\n".join(missing)


#: Where the callables that docs/api.md names live.
_API_MODULES = ("fissure", "fissure.detection", "fissure.detection.decoders", "fissure.anomaly",
                "fissure.backends", "fissure.masks", "fissure.quantize")


def _api_object(name: str) -> object:
    head, *rest = name.split(".")
    for mod in _API_MODULES:
        obj = getattr(importlib.import_module(mod), head, None)
        if obj is not None:
            for attr in rest:
                obj = getattr(obj, attr)
            return obj
    raise AssertionError(f"docs/api.md names {name!r}, which is in none of {_API_MODULES}")


def test_vocabulary_names_are_the_parameters() -> None:
    """docs/api.md's table: each name is a parameter of every Python callable its row lists
    (an attribute where the row says so), so the vocabulary cannot drift from the code."""
    import inspect

    rows = [line for line in (ROOT / "docs" / "api.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| `")]
    assert len(rows) >= 15
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        name = cells[0].strip("`")
        python_part = cells[1].split(";")[0]
        for m in re.finditer(r"`([A-Za-z_][\w.]*)`( \(attribute\))?", python_part):
            obj = _api_object(m.group(1))
            if m.group(2):
                inst = obj() if isinstance(obj, type) else obj
                assert hasattr(inst, name), f"{m.group(1)} has no attribute {name}"
            else:
                params = inspect.signature(obj).parameters  # type: ignore[arg-type]
                assert name in params, f"{m.group(1)} has no parameter {name} (docs/api.md)"
