"""The README's quickstart runs and its assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_quickstart_runs() -> None:
    if not README.exists():
        pytest.skip("not running from a source checkout")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python block"
    namespace: dict = {}  # one session: later blocks use the first block's imports
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
