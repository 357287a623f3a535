"""docs/corruptions.md prints the severity table the code defines (``severity_table``), so the two cannot drift."""

from __future__ import annotations

from pathlib import Path

from unetgan_core.corruptions import severity_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "corruptions.md"


def test_docs_table_is_the_registry():
    text = DOC.read_text(encoding="utf-8")
    for row in severity_table():
        assert "| " + " | ".join(row.values()) + " |" in text, row["corruption"]
