"""Gradient flow ||dL/dh_t||: against a per-step reference, and the vanishing-gradient picture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import cells
from jaxrnn.params import Layout, init_params, layer_params
from jaxrnn.training.diagnostics import gradient_flow, plot_gradient_flow

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

T, B, I, H = 6, 2, 3, 4


def _setup(mode):
    p = layer_params(init_params(jax.random.key(0), Layout(mode, I, H)), 0, False)
    p = jax.tree.map(lambda w: 2 * w, p)  # larger weights: gradients that differ across t
    xs = jax.random.normal(jax.random.key(1), (T, B, I))
    if mode == "lstm":
        return cells.lstm_cell, p, xs, (jnp.zeros((B, H)), jnp.ones((B, H)))
    return cells.rnn_tanh_cell, p, xs, jnp.zeros((B, H))


def _loss(ys, final):
    w = jnp.linspace(-1.0, 1.0, ys.size).reshape(ys.shape)
    return jnp.sum(jnp.sin(ys * w)) + jnp.sum(jax.tree.leaves(final)[-1] ** 2)


def _loss_from_step(cell, p, xs, carry, t):
    """L as a function of h_t, by an explicit Python loop (no perturbation trick)."""
    ys = []
    for s in range(t + 1):
        carry, y = cell(p, carry, xs[s])
        ys.append(y)
    lstm = isinstance(carry, tuple)

    def f(h):
        c = (h, carry[1]) if lstm else h
        out = [*ys[:t], h]
        for s in range(t + 1, T):
            c, y = cell(p, c, xs[s])
            out.append(y)
        return _loss(jnp.stack(out), c)

    return f, ys[t]


@pytest.mark.parametrize("mode", ["rnn_tanh", "lstm"])
def test_matches_per_step_reference(mode):
    cell, p, xs, carry = _setup(mode)
    got = np.asarray(jax.jit(gradient_flow, static_argnums=(0, 4))(cell, p, xs, carry, _loss))
    for t in range(T):
        f, h = _loss_from_step(cell, p, xs, carry, t)
        g = jax.grad(f)(h)
        np.testing.assert_allclose(got[t], jnp.linalg.norm(g), rtol=1e-5)
        # and a finite difference along the gradient direction: dL/du = ||g||
        u, d = g / jnp.linalg.norm(g), 1e-2
        fd = (f(h + d * u) - f(h - d * u)) / (2 * d)
        np.testing.assert_allclose(got[t], fd, rtol=2e-2)
    assert np.ptp(got) > 0.1 * got.max()


def test_elman_vanishes_while_lstm_keeps_its_gradient():
    t, b, i, h = 50, 8, 8, 32
    xs = jax.random.normal(jax.random.key(1), (t, b, i))
    rnn = layer_params(init_params(jax.random.key(0), Layout("rnn_tanh", i, h)), 0, False)
    lstm = layer_params(init_params(jax.random.key(0), Layout("lstm", i, h)), 0, False)
    # The usual LSTM practice: forget-gate bias 1 (Gers et al. 2000, Jozefowicz et al. 2015).
    lstm["bias_hh"] = lstm["bias_hh"].at[h : 2 * h].add(1.0)

    def last(ys, _):
        return jnp.sum(ys[-1] ** 2)

    n_rnn = gradient_flow(cells.rnn_tanh_cell, rnn, xs, jnp.zeros((b, h)), last)
    n_lstm = gradient_flow(cells.lstm_cell, lstm, xs, (jnp.zeros((b, h)),) * 2, last)
    rnn_decay = float(n_rnn[0] / n_rnn[-1])
    lstm_decay = float(n_lstm[0] / n_lstm[-1])
    assert rnn_decay < 1e-8  # many orders of magnitude over 50 steps
    assert lstm_decay > 1e-6
    assert lstm_decay > 1e6 * rnn_decay


def test_plot_and_bad_input(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "flow.png"
    plot_gradient_flow({"elman": np.logspace(-8, 0, 20), "lstm": np.logspace(-2, 0, 20)}, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"norms\['x'\] must be 1-D \(T,\), got shape \(2, 2\)"):
        plot_gradient_flow({"x": np.ones((2, 2))}, tmp_path / "bad.png")

    def detached(p, c, x):  # output is not the carry
        c, y = cells.rnn_tanh_cell(p, c, x)
        return c, 2 * y

    _, p, xs, carry = _setup("rnn_tanh")
    with pytest.raises(ValueError, match="output y is also part of its carry"):
        gradient_flow(detached, p, xs, carry, _loss)
