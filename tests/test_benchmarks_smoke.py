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
