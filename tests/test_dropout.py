"""Variational (time-shared) dropout: one mask for all steps, exact math, off in eval."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxrnn
import jaxrnn.linen
import jaxrnn.nnx
from jaxrnn import cells
from jaxrnn.dropout import dropout_mask, variational
from jaxrnn.params import Layout, init_params, layer_params
from jaxrnn.scan import scan

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

T, B, I, H = 7, 3, 4, 5


def _sig(a):
    return 1 / (1 + np.exp(-a))


def _np_loop(mode, p, xs, m_in, m_rec):
    """Gal & Ghahramani's equations, step by step in float64."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    xs = np.asarray(xs, np.float64)
    h, c, out = np.zeros((B, H)), np.zeros((B, H)), []
    for t in range(T):
        x, hd = xs[t] * m_in, h * m_rec
        gi = x @ p["weight_ih"].T + p["bias_ih"]
        gh = hd @ p["weight_hh"].T + p["bias_hh"]
        if mode == "rnn_tanh":
            h = np.tanh(gi + gh)
        elif mode == "lstm":
            i, f, g, o = np.split(gi + gh, 4, axis=-1)
            c = _sig(f) * c + _sig(i) * np.tanh(g)
            h = _sig(o) * np.tanh(c)
        else:
            ir, iz, in_ = np.split(gi, 3, axis=-1)
            hr, hz, hn = np.split(gh, 3, axis=-1)
            r, z = _sig(ir + hr), _sig(iz + hz)
            n = np.tanh(in_ + r * hn)
            h = (1 - z) * n + z * h  # the update uses the undropped h
        out.append(h)
    return np.stack(out)


@pytest.mark.parametrize(
    ("mode", "cell"),
    [("rnn_tanh", cells.rnn_tanh_cell), ("lstm", cells.lstm_cell), ("gru", cells.gru_cell)],
)
def test_cell_matches_the_equations(mode, cell):
    p = layer_params(init_params(jax.random.key(0), Layout(mode, I, H)), 0, False)
    xs = jax.random.normal(jax.random.key(1), (T, B, I))
    m_in = dropout_mask(jax.random.key(2), (B, I), 0.4)
    m_rec = dropout_mask(jax.random.key(3), (B, H), 0.3)
    carry = (jnp.zeros((B, H)),) * 2 if mode == "lstm" else jnp.zeros((B, H))
    masked = {**p, "input_mask": m_in, "recurrent_mask": m_rec}
    _, ys = scan(variational(cell), masked, xs, carry)
    np.testing.assert_allclose(ys, _np_loop(mode, p, xs, m_in, m_rec), rtol=1e-5, atol=1e-6)
    _, plain = scan(cell, p, xs, carry)
    _, ones = scan(variational(cell), p, xs, carry)  # no masks in params: the plain cell
    np.testing.assert_allclose(ones, plain, rtol=1e-5, atol=1e-6)


def test_the_same_mask_at_every_step():
    m_in = dropout_mask(jax.random.key(0), (B, I), 0.5)
    m_rec = dropout_mask(jax.random.key(1), (B, I), 0.5)

    def probe(p, c, x):  # emits what the wrapped cell hands it: x_t and h_{t-1}
        return jnp.ones_like(c), jnp.concatenate([x, c], axis=-1)

    params = {"input_mask": m_in, "recurrent_mask": m_rec}
    _, seen = scan(variational(probe), params, jnp.ones((T, B, I)), jnp.ones((B, I)))
    for t in range(T):
        np.testing.assert_array_equal(seen[t, :, :I], m_in)
        np.testing.assert_array_equal(seen[t, :, I:], m_rec)
    assert set(np.unique(m_in)) == {0.0, 2.0}


def test_module_masks_are_shared_across_time():
    # W_hh = 0, so h_t depends on x_t alone: a constant input gives a constant output iff the
    # input mask is the same at every step.
    m = jaxrnn.linen.RNN(H, input_dropout=0.5)
    x = jnp.ones((T, B, I))
    v = m.init(jax.random.key(0), x, deterministic=True)
    v = jax.tree.map(jnp.zeros_like, v) | {
        "params": {**jax.tree.map(jnp.zeros_like, v["params"]), "weight_ih_l0": jnp.eye(H, I)}
    }
    y, _ = m.apply(v, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    np.testing.assert_array_equal(y, jnp.broadcast_to(y[0], y.shape))
    # each feature dropped, or kept and scaled by 1 / (1 - 0.5)
    np.testing.assert_allclose(np.unique(y[0]), [0.0, np.tanh(2.0)], rtol=1e-6)


def test_modules_plumb_to_the_functional_and_switch_off():
    x = jax.random.normal(jax.random.key(0), (T, B, I))
    kw = {"input_dropout": 0.3, "recurrent_dropout": 0.2}
    m = jaxrnn.linen.LSTM(H, num_layers=2, bidirectional=True, dropout=0.1, **kw)
    v = m.init(jax.random.key(0), x, deterministic=True)
    key = jax.random.key(5)
    train, _ = m.apply(v, x, deterministic=False, rngs={"dropout": key})
    used = m.apply(v, rngs={"dropout": key}, method=lambda mod: mod.make_rng("dropout"))
    want, _ = jaxrnn.lstm(v["params"], x, dropout=0.1, key=used, **kw)
    np.testing.assert_array_equal(train, want)
    plain, _ = jaxrnn.lstm(v["params"], x)
    assert not np.allclose(train, plain)
    evaluated, _ = m.apply(v, x, deterministic=True)
    np.testing.assert_array_equal(evaluated, plain)
    # rate 0 is an exact no-op, even in training mode
    zero = jaxrnn.linen.LSTM(H, num_layers=2, bidirectional=True, dropout=0.1)
    a, _ = zero.apply(v, x, deterministic=False, rngs={"dropout": key})
    b, _ = jaxrnn.lstm(v["params"], x, dropout=0.1, key=used)
    np.testing.assert_array_equal(a, b)

    n = jaxrnn.nnx.GRU(I, H, recurrent_dropout=0.5, input_dropout=0.2, rngs=nnx.Rngs(0))
    plain, _ = jaxrnn.gru(n.state_dict(), x)
    dropped, _ = n(x)
    assert not np.allclose(dropped, plain)
    n.eval()
    np.testing.assert_array_equal(n(x)[0], plain)
    off = jaxrnn.nnx.GRU(I, H, input_dropout=0.0, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(off(x)[0], plain)


def test_mask_statistics_and_bad_rates():
    m = dropout_mask(jax.random.key(0), (200, 500), 0.25)
    assert set(np.unique(m)) == {0.0, np.float32(1 / 0.75)}
    assert abs(float((m == 0).mean()) - 0.25) < 0.01
    with pytest.raises(
        ValueError, match=r"recurrent_dropout should be a number in range \[0, 1\] .*, got 1.5"
    ):
        jaxrnn.nnx.LSTM(I, H, recurrent_dropout=1.5, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError, match=r"input_dropout should be a number in range \[0, 1\] .*, got -0.1"
    ):
        jaxrnn.rnn(init_params(jax.random.key(0), Layout("rnn_tanh", I, H)), jnp.ones((T, B, I)),
                   input_dropout=-0.1)  # fmt: skip
