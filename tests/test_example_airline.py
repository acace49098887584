"""``examples/airline.py``: data, the seasonal-naive baseline, a smoke run and an exact resume."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("orbax.checkpoint")

from examples import airline

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

TINY = ["--hidden", "8", "--members", "2", "--lr", "1e-2", "--eval-every", "10"]


def test_series_is_box_jenkins_g():
    y = airline.load()
    assert y.shape == (144,) and y[0] == 112 and y[-1] == 432 and y.sum() == 40363


def test_rollout_reading_the_truth_matches_teacher_forcing():
    # the closed-loop rollout's first prediction is the teacher-forced one after the history
    params = airline.init(jax.random.key(0), 8)
    x = jnp.asarray(airline.features(np.linspace(-1, 1, 30), np.arange(30)))
    forced = airline.predict_next(params, x[None])[0]
    ds = airline.rollout(params, x[:20], jnp.arange(20, 30))
    np.testing.assert_allclose(ds[0], forced[19], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_airline_trains_resumes_exactly_and_writes_its_outputs(tmp_path):
    straight = airline.main([*TINY, "--steps", "40", "--out", str(tmp_path / "a")])
    out = tmp_path / "b"
    airline.main([*TINY, "--steps", "20", "--out", str(out)])
    resumed = airline.main([*TINY, "--steps", "40", "--out", str(out), "--resume"])
    assert resumed["rmse"] == straight["rmse"]  # same steps from the checkpoint on
    y = airline.load()
    naive = np.tile(y[-36:-24], 2)  # 1958 repeated for 1959 and 1960
    assert resumed["rmse_seasonal_naive"] == pytest.approx(
        np.sqrt(np.mean((naive - y[-24:]) ** 2)), abs=0.01
    )
    losses = [v for _, v in json.loads((out / "history.json").read_text())["train_loss"]]
    assert losses[-1] < losses[0]
    assert json.loads((out / "metrics.json").read_text())["rmse"] == resumed["rmse"]
    assert (out / "plot.png").stat().st_size > 0
    assert any((out / "checkpoint").iterdir())
