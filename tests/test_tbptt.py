"""Truncated BPTT: same forward as one pass, gradients cut at chunk borders, resets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import cells
from jaxrnn.params import Layout, init_params, layer_params
from jaxrnn.scan import scan
from jaxrnn.training.tbptt import carry_over, reset_carry, stream_batches, tbptt_scan

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

T, B, I, H, K = 12, 3, 2, 5, 4


def _lstm():
    p = layer_params(init_params(jax.random.key(0), Layout("lstm", I, H)), 0, False)
    xs = jax.random.normal(jax.random.key(1), (T, B, I))
    carry = (jnp.zeros((B, H)), jnp.zeros((B, H)))
    return p, xs, carry


def test_chunks_equal_one_pass():
    p, xs, carry = _lstm()
    (h, c), ys = scan(cells.lstm_cell, p, xs, carry)
    (h2, c2), ys2 = jax.jit(tbptt_scan, static_argnums=0, static_argnames="chunk_size")(
        cells.lstm_cell, p, xs, carry, chunk_size=K
    )
    np.testing.assert_allclose(ys2, ys, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h2, h, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(c2, c, rtol=1e-6, atol=1e-7)

    # The stateful-stream pattern: one call per chunk, the carry handed over between calls.
    state, outs = carry, []
    for i in range(T // K):
        state, y = scan(cells.lstm_cell, p, xs[i * K : (i + 1) * K], carry_over(state))
        outs.append(y)
    np.testing.assert_allclose(jnp.concatenate(outs), ys, rtol=1e-6, atol=1e-7)


def test_gradients_stop_at_chunk_borders():
    p, xs, carry = _lstm()

    def chunk2_loss(xs, p, truncate):
        if truncate:
            _, ys = tbptt_scan(cells.lstm_cell, p, xs, carry, chunk_size=K)
        else:
            _, ys = scan(cells.lstm_cell, p, xs, carry)
        return jnp.sum(ys[K : 2 * K] ** 2)

    g_x, g_p = jax.grad(chunk2_loss, argnums=(0, 1))(xs, p, True)
    assert np.all(np.asarray(g_x[:K]) == 0.0)  # chunk 1: cut off exactly
    assert np.all(np.abs(np.asarray(g_x[K : 2 * K])).sum(axis=(1, 2)) > 0)
    assert np.all(np.asarray(g_x[2 * K :]) == 0.0)  # the future never matters
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(g_p))
    full, _ = jax.grad(chunk2_loss, argnums=(0, 1))(xs, p, False)
    assert float(jnp.abs(full[:K]).sum()) > 0  # without truncation chunk 1 does get gradient

    # Across calls, carry_over cuts the gradient the same way.
    def streamed(x1, x2):
        state, _ = scan(cells.lstm_cell, p, x1, carry)
        _, y = scan(cells.lstm_cell, p, x2, carry_over(state))
        return jnp.sum(y**2)

    g1, g2 = jax.grad(streamed, argnums=(0, 1))(xs[:K], xs[K : 2 * K])
    assert np.all(np.asarray(g1) == 0.0) and float(jnp.abs(g2).sum()) > 0


def test_resets_restart_flagged_sequences_only():
    p, xs, carry = _lstm()
    resets = np.zeros((T, B), bool)
    resets[5, 0] = True  # sequence 0: a new document starts at step 5 (inside chunk 2)
    resets[8, 2] = True  # sequence 2: at the first step of chunk 3
    _, ys = tbptt_scan(cells.lstm_cell, p, xs, carry, chunk_size=K, resets=jnp.asarray(resets))
    _, whole = scan(cells.lstm_cell, p, xs, carry)
    np.testing.assert_allclose(ys[:, 1], whole[:, 1], rtol=1e-6, atol=1e-7)  # never reset
    for b, t0 in ((0, 5), (2, 8)):
        np.testing.assert_allclose(ys[:t0, b], whole[:t0, b], rtol=1e-6, atol=1e-7)
        zero = (jnp.zeros((1, H)), jnp.zeros((1, H)))
        _, fresh = scan(cells.lstm_cell, p, xs[t0:, b : b + 1], zero)
        np.testing.assert_allclose(ys[t0:, b], fresh[:, 0], rtol=1e-6, atol=1e-7)
        assert not np.allclose(ys[t0:, b], whole[t0:, b])


def test_reset_carry_on_layer_states():
    h_n = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 4) + 1  # (L, B, H)
    reset = jnp.array([False, True, False])
    out = reset_carry((h_n, 2 * h_n), reset, batch_axis=1)
    for o, src in zip(out, (h_n, 2 * h_n), strict=True):
        np.testing.assert_array_equal(o[:, 1], 0.0)
        np.testing.assert_array_equal(o[:, [0, 2]], src[:, [0, 2]])
    # With a module: resetting h_n of the rows that start a new document
    params = init_params(jax.random.key(0), Layout("gru", I, H, num_layers=2))
    xs = jax.random.normal(jax.random.key(1), (K, B, I))
    _, h = jaxrnn.gru(params, xs)
    h = carry_over(h, reset, batch_axis=1)
    out, _ = jaxrnn.gru(params, xs, h)
    fresh, _ = jaxrnn.gru(params, xs[:, 1:2])
    np.testing.assert_allclose(out[:, 1:2], fresh, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match=r"reset must have shape \(B,\) = \(3,\), got \(2,\)"):
        reset_carry(h_n, jnp.array([True, False]), batch_axis=1)
    with pytest.raises(TypeError, match="reset must be a bool array, got dtype int32"):
        reset_carry(h_n, jnp.array([0, 1, 0]), batch_axis=1)


def test_stream_batches_match_a_loop():
    data = np.arange(103)
    inputs, targets = stream_batches(data, batch_size=4, chunk_size=5)
    per_row = 102 // 4  # 25 -> 5 chunks of 5
    assert inputs.shape == targets.shape == (5, 4, 5)
    for i in range(5):
        for b in range(4):
            start = b * per_row + i * 5
            np.testing.assert_array_equal(inputs[i, b], data[start : start + 5])
            np.testing.assert_array_equal(targets[i, b], data[start + 1 : start + 6])
    with pytest.raises(ValueError, match="too short for batch_size=4 and chunk_size=30"):
        stream_batches(data, 4, 30)


def test_bad_chunking_is_named():
    p, xs, carry = _lstm()
    with pytest.raises(
        ValueError, match="chunk_size must be a positive int dividing T = 12, got 5"
    ):
        tbptt_scan(cells.lstm_cell, p, xs, carry, chunk_size=5)
    with pytest.raises(ValueError, match=r"resets must be a bool array of shape \(T, B\)"):
        tbptt_scan(cells.lstm_cell, p, xs, carry, chunk_size=4, resets=jnp.zeros((T, 2), bool))
