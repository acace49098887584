"""A user-written cell (a peephole LSTM, Gers & Schmidhuber 2000) through ``jaxrnn.stack``,
checked against a plain NumPy loop that handles depth, direction and lengths on its own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

T, B, I, H = 6, 3, 4, 5


def peephole_cell(p, carry, x):
    """LSTM whose gates also see the cell state: ``i, f`` read ``c_{t-1}``, ``o`` reads ``c_t``."""
    h, c = carry
    i, f, g, o = jnp.split(x @ p["w_x"].T + h @ p["w_h"].T + p["b"], 4, axis=-1)
    i = jax.nn.sigmoid(i + p["w_ci"] * c)
    f = jax.nn.sigmoid(f + p["w_cf"] * c)
    c = f * c + i * jnp.tanh(g)
    h = jax.nn.sigmoid(o + p["w_co"] * c) * jnp.tanh(c)
    return (h, c), h


def reference_step(p, h, c, x):
    """One step for one sequence, in float64 NumPy."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    z = p["w_x"] @ x + p["w_h"] @ h + p["b"]
    i = sig(z[:H] + p["w_ci"] * c)
    f = sig(z[H : 2 * H] + p["w_cf"] * c)
    c = f * c + i * np.tanh(z[2 * H : 3 * H])
    h = sig(z[3 * H :] + p["w_co"] * c) * np.tanh(c)
    return h, c


def reference_stack(layers, x, carries, lengths):
    """``x (T, B, I)``: each sequence runs alone over its first ``lengths[b]`` steps, forward
    or backward from its last valid step; padded outputs are 0."""
    layer_input = np.asarray(x, np.float64)
    finals = []
    for layer, layer_carries in zip(layers, carries, strict=True):
        outs, layer_finals = [], []
        for d, (p, (h0, c0)) in enumerate(zip(layer, layer_carries, strict=True)):
            y = np.zeros((T, B, H))
            h_n, c_n = np.zeros((B, H)), np.zeros((B, H))
            for b in range(B):
                h, c = h0[b], c0[b]
                steps = range(lengths[b]) if d == 0 else range(lengths[b] - 1, -1, -1)
                for t in steps:
                    h, c = reference_step(p, h, c, layer_input[t, b])
                    y[t, b] = h
                h_n[b], c_n[b] = h, c
            outs.append(y)
            layer_finals.append((h_n, c_n))
        layer_input = np.concatenate(outs, axis=-1)
        finals.append(layer_finals)
    return layer_input, finals


def make_problem(num_layers, directions, seed=0):
    rng = np.random.default_rng(seed)

    def draw(*shape):
        return rng.uniform(-0.6, 0.6, shape)

    def cell_params(in_size):
        return {"w_x": draw(4 * H, in_size), "w_h": draw(4 * H, H), "b": draw(4 * H),
                "w_ci": draw(H), "w_cf": draw(H), "w_co": draw(H)}  # fmt: skip

    layers = [
        [cell_params(I if k == 0 else directions * H) for _ in range(directions)]
        for k in range(num_layers)
    ]
    carries = [[(draw(B, H), draw(B, H)) for _ in range(directions)] for _ in range(num_layers)]
    x = rng.standard_normal((T, B, I))
    lengths = np.array([T, 1, 4])
    return layers, carries, x, lengths


def as_f32(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


@pytest.mark.parametrize("num_layers,directions", [(1, 1), (3, 2)])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_custom_cell_matches_numpy_loop(num_layers, directions, with_lengths):
    layers, carries, x, lengths = make_problem(num_layers, directions)
    if not with_lengths:
        lengths = np.full(B, T)
    want_out, want_finals = reference_stack(layers, x, carries, lengths)

    # batch_first=True on the JAX side: the layout is jaxrnn's business, not the reference's
    out, finals = jaxrnn.stack(
        peephole_cell, as_f32(layers), as_f32(np.swapaxes(x, 0, 1)), as_f32(carries),
        lengths=jnp.asarray(lengths) if with_lengths else None, batch_first=True,
    )  # fmt: skip
    np.testing.assert_allclose(np.swapaxes(out, 0, 1), want_out, atol=1e-5)
    for got_layer, want_layer in zip(finals, want_finals, strict=True):
        for (h, c), (wh, wc) in zip(got_layer, want_layer, strict=True):
            np.testing.assert_allclose(h, wh, atol=1e-5)
            np.testing.assert_allclose(c, wc, atol=1e-5)


def test_custom_cell_gradient_matches_finite_differences():
    """jax.grad through stack (generic loop, lengths, both directions) against central
    differences of the NumPy reference, in float64."""
    layers, carries, x, lengths = make_problem(2, 2, seed=1)
    weights = np.random.default_rng(2).standard_normal((T, B, 2 * H))

    def reference_loss(layers):
        out, finals = reference_stack(layers, x, carries, lengths)
        return np.sum(weights * out) + sum(np.sum(c) for layer in finals for _, c in layer)

    def loss(layers):
        out, finals = jaxrnn.stack(peephole_cell, layers, jnp.asarray(x), carries,
                                   lengths=jnp.asarray(lengths))  # fmt: skip
        return jnp.sum(weights * out) + sum(jnp.sum(c) for layer in finals for _, c in layer)

    with jax.enable_x64(True):
        grads = jax.grad(loss)(jax.tree.map(jnp.asarray, layers))
    rng = np.random.default_rng(3)
    eps = 1e-6
    for k, d, name in [(0, 0, "w_x"), (0, 1, "w_ci"), (1, 0, "w_h"), (1, 1, "b"), (0, 1, "w_co")]:
        for _ in range(3):
            index = tuple(rng.integers(s) for s in layers[k][d][name].shape)
            plus = jax.tree.map(np.copy, layers)
            minus = jax.tree.map(np.copy, layers)
            plus[k][d][name][index] += eps
            minus[k][d][name][index] -= eps
            numeric = (reference_loss(plus) - reference_loss(minus)) / (2 * eps)
            np.testing.assert_allclose(grads[k][d][name][index], numeric, rtol=1e-6, atol=1e-8)
