"""docs/promql.md: its python blocks run, in order, and say what happens."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_promql_page_python_blocks_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (DOCS / "promql.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "promql_page"}
    for number, block in enumerate(blocks):
        exec(compile(block, f"docs/promql.md python block {number}", "exec"), namespace)
    frame = namespace["frame"]
    assert dict(zip(frame["job"], frame["value"], strict=True)) == pytest.approx(
        {"api": 4.0, "web": 1.0}
    )
    assert "function mad_over_time() at position 0" in capsys.readouterr().out
