"""The benchmark command runs end to end on tiny shapes, so it cannot rot. No time is checked."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from benchmarks import run


@pytest.mark.slow
def test_quick_benchmark_writes_json_markdown_and_charts(tmp_path, monkeypatch):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nkept\n")
    monkeypatch.setattr(run, "ROOT", tmp_path)  # --write-md edits this copy, not the repo's
    report = run.main(
        ["--quick", "--out", str(tmp_path / "out"), "--reps", "1", "--threads", "1",
         "--cases", "standard-lstm-bi", "small-gru",
         "--peers", "jaxrnn", "jaxrnn-scan", "torch", "flax.linen", "flax.nnx", "--write-md"]
    )  # fmt: skip
    names = [c["name"] for c in report["cases"]]
    assert names == ["standard-lstm-bi", "small-gru"]
    for case in report["cases"]:
        assert set(case["results"]) == {"jaxrnn", "jaxrnn-scan", "torch", "flax.linen", "flax.nnx"}
        assert set(case["ratios"]["step"]) == {"jaxrnn-scan", "torch", "flax.linen", "flax.nnx"}
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["meta"]["cores"] >= 1 and len(saved["meta"]["loadavg_start"]) == 3
    assert saved["scaling"]["steps"] == [8, 16]
    rows = saved["memory"]["rows"]
    assert rows["remat=True (chunk ceil(sqrt(T)))"]["temp_bytes"] < rows["none"]["temp_bytes"]
    for name in ("results.md", "ratios.png", "scaling.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    text = md.read_text()
    assert "kept" in text and "<!-- results:begin -->" in text and "| jaxrnn / torch |" in text


@pytest.mark.slow
def test_gpu_table_harness_runs_on_tiny_shapes(tmp_path):
    from benchmarks import gpu

    report = gpu.main(["--quick", "--out", str(tmp_path), "--cases", "standard-lstm"])
    (case,) = report["cases"]
    assert {"jaxrnn", "fused-u1", "fused-u16", "scan", "bf16", "torch"} <= set(case["median_ms"])
    assert not case["failed"]
    # float32 against float64 on the quick LSTM (T=6, L=2, K = I + H = 8 terms a dot):
    # rounding stays under T * L * K * eps32 = 6 * 2 * 8 * 1.2e-7 ~ 1.2e-5 (measured 3.5e-8);
    # a wrong gate would be off by O(0.1)
    assert case["max_abs_error_vs_float64"]["jaxrnn highest"] < 1.2e-5
    assert "| case |" in (tmp_path / "gpu.md").read_text()


def test_tune_table_reads_two_runs_and_the_rules(tmp_path):
    from benchmarks import tune_table

    entry = {
        "family": "gru", "batch": 8, "steps": 64, "features": [32], "hidden": 64,
        "layers": 1, "directions": 1, "dtype": "float32", "matmul_dtype": None,
        "training": True,
    }  # fmt: skip
    later = {"entries": [{**entry, "times": {"fused/1": 0.002, "fused/2": 0.001}}]}
    earlier = {"entries": [{**entry, "times": {"fused/1": 0.001, "fused/2": 0.003}}]}
    if tune_table.rules_pick(entry) != "fused/1":
        pytest.skip("the expected cells assume the CPU rules (the fused loop, unroll 1)")
    lines = tune_table.rows(later, earlier)
    assert lines[0].endswith("earlier winner: loss here |")
    # the rules run fused/1: 2 ms, +100% here; the earlier run's winner was fused/1 too
    assert lines[2] == (
        "| gru B8 T64 I32 H64 L1 | train | fused/2 1 | fused/1 2 (+100%) | - | fused/1: +100% |"
    )
    assert tune_table.summary(later, earlier) == (
        "The earlier table's winner is within 3% of this run's fastest on 0 of 1 rows, within "
        "10% on 0, worst +100%; the winner changed on 1 rows."
    )
