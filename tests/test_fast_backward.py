"""The fused loops (:mod:`jaxrnn.fused`) against ``jax.grad`` of the generic scan.

The reference is :func:`jaxrnn.scan.scan` with ``fused=False``: autodiff of the plain cell
loop. Both run in float64 so differences are the hand-written backward's, not rounding. The
loss weights every output and the final carry with distinct values so no entry cancels.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import cells, fused
from jaxrnn.params import Layout, init_params, layer_params
from jaxrnn.scan import scan

T, B, I, H, P = 7, 3, 4, 5, 3
LENGTHS = np.array([7, 2, 5])

KINDS = {
    "rnn_tanh": (cells.rnn_tanh_cell, "rnn", 0),
    "rnn_relu": (cells.rnn_relu_cell, "rnn", 0),
    "lstm": (cells.lstm_cell, "lstm", 0),
    "lstm_proj": (cells.lstm_cell, "lstm", P),
    "gru": (cells.gru_cell, "gru", 0),
}


def setup(kind, bias, dtype=jnp.float64, seed=0):
    cell, mode, proj = KINDS[kind]
    keys = jax.random.split(jax.random.PRNGKey(seed), 4)
    params = layer_params(
        init_params(keys[0], Layout(mode, I, H, 1, bias, False, proj), dtype=dtype), 0, False
    )
    x = jax.random.normal(keys[1], (T, B, I), dtype)
    h0 = jax.random.normal(keys[2], (B, proj or H), dtype)
    carry = (h0, jax.random.normal(keys[3], (B, H), dtype)) if mode == "lstm" else h0
    return cell, params, x, carry


def weighted_loss(run):
    def loss(params, x, carry):
        final, ys = run(params, x, carry)
        w = jnp.cos(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
        return (w * ys).sum() + sum(jnp.sin(c).sum() for c in jax.tree.leaves(final))

    return loss


def assert_trees_close(got, want, tol):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(
            np.asarray(g, np.float64), np.asarray(w, np.float64), rtol=tol, atol=tol
        )


# Every kind under a pairwise cover of (bias, reverse, lengths): each pair of flag values
# meets in some case, at a quarter of the full product's compile time.
FLAGS = [(True, False, False), (True, True, True), (False, False, True), (False, True, False)]


@pytest.mark.parametrize("kind,bias,reverse,lengths", [(k, *f) for k in KINDS for f in FLAGS])
def test_fused_matches_autodiff_of_generic_scan(kind, bias, reverse, lengths):
    with jax.enable_x64(True):
        cell, params, x, carry = setup(kind, bias)
        lens = jnp.asarray(LENGTHS) if lengths else None

        def run(fast):
            return lambda p, x, c: scan(cell, p, x, c, lengths=lens, reverse=reverse, fused=fast)

        @jax.jit
        def both(p, x, c):
            grads = [jax.grad(weighted_loss(run(f)), argnums=(0, 1, 2))(p, x, c) for f in (1, 0)]
            return run(True)(p, x, c), run(False)(p, x, c), *grads

        out, ref_out, grads, ref_grads = both(params, x, carry)
        assert_trees_close(out, ref_out, 1e-12)
        assert_trees_close(grads, ref_grads, 1e-10)


def test_fused_unroll_and_bfloat16_input(kind="lstm"):
    """``unroll`` is honoured; a bf16 input with f32 weights gets cotangents in each dtype."""
    cell, params, x, carry = setup(kind, True, jnp.float32)
    xb = x.astype(jnp.bfloat16)
    carry = jax.tree.map(lambda c: c.astype(jnp.float32), carry)

    def grads(fast, unroll):
        run = lambda p, x, c: scan(cell, p, x, c, unroll=unroll, fused=fast)  # noqa: E731
        return jax.grad(weighted_loss(run), argnums=(0, 1, 2))(params, xb, carry)

    got, want = grads(True, 3), grads(False, 1)
    assert got[1].dtype == jnp.bfloat16 and got[0]["weight_ih"].dtype == jnp.float32
    assert_trees_close(
        jax.tree.map(lambda a: a.astype(jnp.float32), got),
        jax.tree.map(lambda a: a.astype(jnp.float32), want),
        2e-2,
    )


def test_user_cells_use_the_generic_loop():
    assert fused.mode_of(cells.lstm_cell) == "lstm"
    assert fused.mode_of(lambda p, c, x: cells.lstm_cell(p, c, x)) is None


def test_unknown_mode_is_rejected():
    _, params, x, carry = setup("gru", True, jnp.float32)
    with pytest.raises(ValueError, match=r"mode must be one of .* got 'lstmx'"):
        fused.scan("lstmx", params, x, carry)
