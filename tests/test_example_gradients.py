"""Smoke test of ``examples/gradients.py`` and its adding-problem data."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("orbax.checkpoint")

from examples import gradients


def test_adding_problem_marks_one_step_per_half_and_sums_them():
    x, target = gradients.adding_problem(np.random.default_rng(0), 50, 20)
    assert x.shape == (20, 50, 2) and target.shape == (50,)
    values, markers = x[..., 0], x[..., 1]
    assert np.all(markers[:10].sum(0) == 1) and np.all(markers[10:].sum(0) == 1)
    np.testing.assert_allclose(target, (values * markers).sum(0), rtol=1e-6)
    assert values.min() >= 0 and values.max() < 1


@pytest.mark.slow
def test_gradients_trains_and_writes_its_outputs(tmp_path):
    out = tmp_path / "run"
    metrics = gradients.main(
        ["--length", "12", "--steps", "40", "--hidden", "8", "--eval-every", "20",
         "--lr", "1e-2", "--out", str(out)]
    )  # fmt: skip
    history = json.loads((out / "history.json").read_text())
    for name in gradients.MODELS:
        losses = [v for _, v in history[f"{name}_loss"]]
        assert losses[-1] < losses[0]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == {**metrics, **{k: saved[k] for k in ("wall_s", "cpu_s")}}
    for name in ("rnn", "lstm", "gru", "baseline"):
        assert 0 <= saved[f"{name}_acc"] <= 100 and saved[f"{name}_mse"] >= 0
    assert abs(saved["baseline_mse"] - 1 / 6) < 0.02
    # the picture: less of the gradient reaches the first step through the Elman RNN
    assert 0 < saved["rnn_flow_ratio"] < min(saved["lstm_flow_ratio"], saved["gru_flow_ratio"])
    for name in ("plot.png", "gradient_flow.png", "gradient_flow_trained.png"):
        assert (out / name).stat().st_size > 0
    assert any((out / "checkpoint").iterdir())
