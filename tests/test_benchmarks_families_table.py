"""``benchmarks/families_table.py`` runs end to end on tiny shapes. No time is checked."""

import json

import pytest

pytest.importorskip("matplotlib")

from benchmarks import families_table


@pytest.mark.slow
def test_quick_families_table_writes_json_markdown_and_plot(tmp_path):
    (tmp_path / "families.md").write_text("# kept\n")
    report = families_table.main(["--quick", "--out", str(tmp_path)])
    row = report["results"]["16"]
    assert {"lstm", "gru", "mingru", "mingru parallel", "lru", "rglru parallel"} <= set(row)
    assert row["mingru"]["temp_bytes"] is not None
    assert json.loads((tmp_path / "families.json").read_text())["size"] == 8
    text = (tmp_path / "families.md").read_text()
    assert "# kept" in text and families_table.BEGIN in text and "| mingru |" in text
    assert (tmp_path / "families.png").stat().st_size > 0
