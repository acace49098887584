"""The fused kernel (:mod:`jaxrnn.kernels.fused`) against ``jax.grad`` of the scan kernel.

The reference is the same family on ``backend="scan"``: autodiff of its reference step.
Both run in float64 so differences are the hand-written backward's, not rounding. The loss
weights every output and the final carry with distinct values so no entry cancels.
(:mod:`tests.test_conformance` holds the registry-wide version of this check.)
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import families, kernels
from jaxrnn.params import Layout, init_params, layer_params

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

T, B, I, H, P = 7, 3, 4, 5, 3
LENGTHS = np.array([7, 2, 5])

KINDS = {
    "rnn_tanh": ("rnn_tanh", 0),
    "rnn_relu": ("rnn_relu", 0),
    "lstm": ("lstm", 0),
    "lstm_proj": ("lstm", P),
    "gru": ("gru", 0),
}


def setup(kind, bias, dtype=jnp.float64, seed=0):
    name, proj = KINDS[kind]
    keys = jax.random.split(jax.random.PRNGKey(seed), 5)
    params = layer_params(
        init_params(keys[0], Layout(name, I, H, 1, bias, False, proj), dtype=dtype), 0, False
    )
    x = jax.random.normal(keys[1], (T, B, I), dtype)
    h0 = jax.random.normal(keys[2], (B, proj or H), dtype)
    carry = (h0, jax.random.normal(keys[3], (B, H), dtype)) if name == "lstm" else h0
    mask = jax.random.bernoulli(keys[4], 0.7, (B, proj or H)).astype(dtype) / 0.7
    return families.get(name), params, x, carry, mask


def runner(family, kernel_name, **kwargs):
    kernel = kernels.select(family, kernels.Call(), kernel_name)
    return lambda p, x, c: kernels.run(kernel, family, p, x, c, **kwargs)


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


# Every kind under a pairwise cover of (bias, reverse, lengths, recurrent mask): each pair of
# flag values meets in some case, at a fraction of the full product's compile time.
FLAGS = [
    (True, False, False, False),
    (True, True, True, True),
    (False, False, True, True),
    (False, True, False, True),
    (True, False, True, False),
]


@pytest.mark.parametrize(
    "kind,bias,reverse,lengths,masked", [(k, *f) for k in KINDS for f in FLAGS]
)
def test_fused_matches_autodiff_of_the_scan_kernel(kind, bias, reverse, lengths, masked):
    with jax.enable_x64(True):
        family, params, x, carry, mask = setup(kind, bias)
        valid = jnp.arange(T)[:, None] < jnp.asarray(LENGTHS)[None] if lengths else None
        kw = dict(valid=valid, reverse=reverse, mask=mask if masked else None)

        @jax.jit
        def both(p, x, c):
            runs = [runner(family, name, **kw) for name in ("fused", "scan")]
            grads = [jax.grad(weighted_loss(r), argnums=(0, 1, 2))(p, x, c) for r in runs]
            return runs[0](p, x, c), runs[1](p, x, c), *grads

        out, ref_out, grads, ref_grads = both(params, x, carry)
        assert_trees_close(out, ref_out, 1e-12)
        assert_trees_close(grads, ref_grads, 1e-10)


def test_fused_unroll_and_bfloat16_input(kind="lstm"):
    """``unroll`` is honoured; a bf16 input with f32 weights gets cotangents in each dtype."""
    family, params, x, carry, _ = setup(kind, True, jnp.float32)
    xb = x.astype(jnp.bfloat16)
    carry = jax.tree.map(lambda c: c.astype(jnp.float32), carry)

    def grads(name, unroll):
        return jax.grad(weighted_loss(runner(family, name, unroll=unroll)), argnums=(0, 1, 2))(
            params, xb, carry
        )

    got, want = grads("fused", 3), grads("scan", 1)
    assert got[1].dtype == jnp.bfloat16 and got[0]["weight_ih"].dtype == jnp.float32
    assert_trees_close(
        jax.tree.map(lambda a: a.astype(jnp.float32), got),
        jax.tree.map(lambda a: a.astype(jnp.float32), want),
        2e-2,
    )
