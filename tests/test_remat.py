"""``remat``: chunked checkpointing of the time loop changes memory, never results.

Outputs, final states and gradients with ``remat`` equal those without it (built-in cells on
the fused loop, a user cell on the generic one), for chunk lengths that divide ``T`` and ones
that leave a shorter last chunk, with lengths and both directions. XLA's compiled memory
analysis shows the activation memory of a long training step shrinking.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxrnn
from jaxrnn import cells
from jaxrnn.params import Layout, init_params, layer_params
from jaxrnn.scan import remat_chunk, scan

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

T, B, I, H = 10, 3, 4, 6


def lstm_params(layers=2, bidirectional=True, seed=0):
    return init_params(jax.random.PRNGKey(seed), Layout("lstm", I, H, layers, True, bidirectional))


def loss_and_grads(params, x, lengths, remat):
    def loss(p, x):
        out, (h, c) = jaxrnn.lstm(p, x, lengths=lengths, remat=remat)
        w = jnp.cos(jnp.arange(out.size, dtype=out.dtype)).reshape(out.shape)
        return (w * out).sum() + jnp.sin(h).sum() + jnp.tanh(c).sum()

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)


@pytest.mark.parametrize("remat", [3, True])
def test_functional_lstm_same_results_and_gradients(remat):
    """3 leaves a short last chunk (10 = 3 * 3 + 1); True is ceil(sqrt(10)) = 4."""
    with jax.enable_x64(True):
        params = lstm_params(layers=1)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        x = jax.random.normal(jax.random.PRNGKey(1), (T, B, I), jnp.float64)
        lengths = jnp.array([10, 4, 7])
        want = loss_and_grads(params, x, lengths, None)
        got = loss_and_grads(params, x, lengths, remat)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", [cells.gru_cell, lambda p, c, x: cells.gru_cell(p, c, x)])
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_remat_for_fused_and_user_cells(cell, reverse):
    with jax.enable_x64(True):
        layout = Layout("gru", I, H)
        p = layer_params(init_params(jax.random.PRNGKey(0), layout, dtype=jnp.float64), 0, False)
        x = jax.random.normal(jax.random.PRNGKey(1), (T, B, I), jnp.float64)
        h0 = jax.random.normal(jax.random.PRNGKey(2), (B, H), jnp.float64)
        lengths = jnp.array([10, 3, 8])

        def loss(p, x, h0, remat):
            h, ys = scan(cell, p, x, h0, lengths=lengths, reverse=reverse, remat=remat)
            return (ys * jnp.arange(1.0, T + 1)[:, None, None]).sum() + (h**2).sum()

        @jax.jit
        def both(p, x, h0):
            grad = jax.value_and_grad(loss, argnums=(0, 1, 2))
            return grad(p, x, h0, None), grad(p, x, h0, 4)

        want, got = both(p, x, h0)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_modules_take_remat():
    x = jax.random.normal(jax.random.PRNGKey(1), (T, B, I))
    linen = jaxrnn.linen.GRU(hidden_size=H, remat=3)
    variables = linen.init(jax.random.PRNGKey(0), x)
    plain = jaxrnn.linen.GRU(hidden_size=H)
    np.testing.assert_allclose(
        linen.apply(variables, x)[0], plain.apply(variables, x)[0], atol=1e-6
    )

    model = jaxrnn.nnx.RNN(I, H, remat=True, rngs=nnx.Rngs(0))
    assert model.remat is True
    out, _ = model(x)
    ref, _ = jaxrnn.rnn(model.state_dict(), x)
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_remat_chunk_and_bad_values():
    assert remat_chunk(None, 100) is None and remat_chunk(False, 100) is None
    assert remat_chunk(True, 100) == 10 and remat_chunk(True, 101) == 11
    assert remat_chunk(7, 100) == 7
    for bad in (0, -2, 2.5, "8"):
        with pytest.raises(
            ValueError, match=f"remat must be None, a bool or a positive int .* got {bad!r}"
        ):
            remat_chunk(bad, 100)


def test_activation_memory_is_sublinear():
    """Compiled temp memory of a training step: O(T) without remat, a fraction with it.

    What remat keeps is the chunk-border carries plus one chunk's activations; the rest of
    the temp memory is the layer's O(T) output and its cotangent, which no remat removes, so
    the saving grows with T.
    """
    # Sizes where a step's activations (B * 4H floats and more) dwarf the GEMM workspaces a
    # GPU backend sizes per shape: at B=4, H=32 an H200's cuBLAS workspace changes between
    # T=256 and T=1024 by more than the activations grow (seen: 2.1 -> 3.8 MB net of T=8).
    p = init_params(jax.random.PRNGKey(0), Layout("lstm", 8, 64))
    temp = {}
    for steps in (8, 512, 2048):
        x = jnp.zeros((steps, 32, 8))
        for remat in (None, True):
            step = jax.jit(jax.grad(lambda p, x, r=remat: jaxrnn.lstm(p, x, remat=r)[0].sum()))
            temp[steps, remat] = step.lower(p, x).compile().memory_analysis().temp_size_in_bytes
    # What grows with T: less the T=8 compile's, which holds what does not (on a GPU that is
    # mostly cuBLAS workspace, megabytes, more than these activations)
    temp = {(t, r): v - temp[8, r] for (t, r), v in temp.items() if t != 8}
    assert temp[2048, None] > 3.5 * temp[512, None]  # linear in T
    assert temp[2048, True] < temp[2048, None] / 4
    assert temp[2048, None] / temp[2048, True] > temp[512, None] / temp[512, True]
