"""Smoke test of ``examples/shakespeare.py``: training, outputs, and an exact resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("orbax.checkpoint")

from examples import shakespeare

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

TINY = ["--hidden", "32", "--embed", "8", "--batch-size", "8", "--chunk", "32", "--lr", "1e-2",
        "--eval-every", "10", "--sample-chars", "40", "--prompt", "KING:"]  # fmt: skip


def test_split_is_first_90_percent_then_last_10():
    chars, train, val = shakespeare.load()
    text = shakespeare.DATA.read_text()
    assert len(chars) == 65 and len(train) == int(0.9 * len(text))
    assert "".join(chars[i] for i in np.concatenate([train, val])) == text


def test_val_streams_cover_the_validation_text_in_order():
    val = np.arange(103)
    x, y = shakespeare.val_streams(val, 4)
    assert x.shape == y.shape == (4, 25)
    np.testing.assert_array_equal(y, x + 1)  # every target is the next character
    np.testing.assert_array_equal(x.ravel(), np.arange(100))


@pytest.mark.slow
def test_shakespeare_trains_resumes_exactly_and_writes_its_outputs(tmp_path):
    straight, out = tmp_path / "straight", tmp_path / "resumed"
    first = shakespeare.main([*TINY, "--steps", "20", "--out", str(straight)])
    # an interrupted run: the same folder as it was after step 10
    shutil.copytree(straight, out)
    shutil.rmtree(out / "checkpoint" / "20")
    resumed = shakespeare.main([*TINY, "--steps", "20", "--out", str(out), "--resume"])
    # same data order, dropout keys, optimizer state and carried LSTM state as the straight run
    assert resumed["val_loss"] == pytest.approx(first["val_loss"], rel=1e-5)

    history = json.loads((out / "history.json").read_text())
    assert len(history["val_loss"]) == 2  # the one from before the interruption, one after
    losses = [v for _, v in history["loss"]]
    assert losses[-1] < losses[0]
    assert resumed["val_loss"] < np.log(65)  # better than uniform over the alphabet
    assert json.loads((out / "metrics.json").read_text())["val_loss"] == resumed["val_loss"]
    sample = (out / "sample.txt").read_text()
    assert sample.startswith("KING:") and len(sample) == len("KING:") + 40 + 1
    assert (out / "plot.png").stat().st_size > 0


@pytest.mark.parametrize("cell", ["lstm", "mingru", "lru", "mlstm"])
def test_step_gives_the_logits_of_a_full_forward_pass(cell):
    """The sampler's one-character ``step`` equals the full-sequence call, so sampling draws
    from the same distribution as before."""
    import jax
    import jax.numpy as jnp

    model = shakespeare.CharRNN(65, 16, shakespeare.CELL_LAYERS[cell], 8, cell=cell)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 65, size=(3, 12)))
    hx0 = model.initial_state(3)
    params = model.init(jax.random.key(0), ids, hx0)["params"]
    full, hx_full = model.apply({"params": params}, ids, hx0)
    step = jax.jit(lambda c, hx: model.apply({"params": params}, c, hx, method="step"))
    hx, stepped = hx0, []
    for t in range(ids.shape[1]):
        logits, hx = step(ids[:, t], hx)
        stepped.append(logits)
    np.testing.assert_allclose(np.stack(stepped, 1), full, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(hx), jax.tree.leaves(hx_full), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["mingru", "lru"])
def test_other_cells_train_and_sample(cell, tmp_path):
    metrics = shakespeare.main(
        [*TINY, "--cell", cell, "--steps", "6", "--eval-every", "6", "--out", str(tmp_path)]
    )
    assert metrics["cell"] == cell and metrics["val_loss"] < np.log(65) + 0.5
    assert (tmp_path / "sample.txt").read_text().startswith("KING:")
