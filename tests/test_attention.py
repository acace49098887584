"""Additive (Bahdanau) and dot-product (Luong) attention against a NumPy reference."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxrnn.linen
import jaxrnn.nnx
from jaxrnn import attention

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")


def _np_attention(scores, keys, lengths):
    """Per-sequence softmax over the valid prefix, loops in float64."""
    b, t = scores.shape
    weights = np.zeros((b, t))
    for i in range(b):
        n = lengths[i]
        if n:
            e = np.exp(scores[i, :n] - scores[i, :n].max())
            weights[i, :n] = e / e.sum()
    return np.einsum("bt,bth->bh", weights, keys), weights


def _np_additive_scores(p, query, keys):
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    b, t, _ = keys.shape
    scores = np.zeros((b, t))
    for i in range(b):
        for s in range(t):
            pre = p["weight_query"] @ query[i] + p["weight_key"] @ keys[i, s] + p["bias"]
            scores[i, s] = p["v"] @ np.tanh(pre)
    return scores


def _data(hq=3, hk=4, b=4, t=6, seed=0):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(b, hq)).astype(np.float32)
    keys = rng.normal(size=(b, t, hk)).astype(np.float32)
    lengths = np.array([6, 3, 1, 0][:b], np.int32)
    return query, keys, lengths


@pytest.mark.parametrize("jit", [False, True])
def test_additive_matches_numpy(jit):
    query, keys, lengths = _data()
    p = attention.init_additive(jax.random.key(0), 3, 4, 5)
    f = jax.jit(attention.additive_attention) if jit else attention.additive_attention
    context, weights = f(p, query, keys, lengths)
    want_c, want_w = _np_attention(
        _np_additive_scores(p, query.astype(np.float64), keys.astype(np.float64)), keys, lengths
    )
    np.testing.assert_allclose(weights, want_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, want_c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [False, True])
def test_dot_product_matches_numpy(scale):
    query, keys, lengths = _data(hq=4)
    context, weights = attention.dot_product_attention(query, keys, lengths, scale=scale)
    scores = np.einsum("bh,bth->bt", query.astype(np.float64), keys.astype(np.float64))
    want_c, want_w = _np_attention(scores / (2.0 if scale else 1.0), keys, lengths)
    np.testing.assert_allclose(weights, want_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, want_c, rtol=1e-5, atol=1e-6)


def test_weights_sum_to_one_and_are_exactly_zero_on_padding():
    query, keys, lengths = _data(hq=4)
    keys[1, 3:] = 1e4  # huge padded keys must not leak into anything
    p = attention.init_additive(jax.random.key(1), 4, 4, 8)
    for context, weights in (
        attention.dot_product_attention(query, keys, lengths),
        attention.additive_attention(p, query, keys, lengths),
    ):
        weights = np.asarray(weights)
        valid = np.arange(6)[None] < lengths[:, None]
        assert np.all(weights[~valid] == 0.0)
        np.testing.assert_allclose(weights.sum(-1), (lengths > 0).astype(float), rtol=1e-6)
        assert np.all(np.isfinite(context))
        np.testing.assert_array_equal(context[3], 0.0)  # length 0: no NaN, zero context

    grads = jax.grad(lambda k: attention.dot_product_attention(query, k, lengths)[0].sum())(keys)
    assert np.all(np.isfinite(grads))
    np.testing.assert_array_equal(grads[1, 3:], 0.0)


def test_many_queries_equal_one_at_a_time():
    query, keys, lengths = _data(hq=4)
    queries = np.stack([query, 2 * query, -query], axis=1)  # (B, S=3, H)
    p = attention.init_additive(jax.random.key(2), 4, 4, 5)
    for f in (attention.dot_product_attention, lambda *a: attention.additive_attention(p, *a)):
        context, weights = f(queries, keys, lengths)
        chex.assert_shape((context, weights), [(4, 3, 4), (4, 3, 6)])
        for s in range(3):
            c, w = f(queries[:, s], keys, lengths)
            np.testing.assert_allclose(context[:, s], c, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(weights[:, s], w, rtol=1e-6, atol=1e-7)


def test_modules_wrap_the_functions():
    query, keys, lengths = _data()
    m = jaxrnn.linen.AdditiveAttention(features=5)
    variables = m.init(jax.random.key(0), query, keys, lengths)
    shapes = jax.tree.map(jnp.shape, variables["params"])
    assert shapes == attention.additive_shapes(3, 4, 5)
    got = m.apply(variables, query, keys, lengths)
    want = attention.additive_attention(variables["params"], query, keys, lengths)
    jax.tree.map(np.testing.assert_array_equal, got, want)

    n = jaxrnn.nnx.AdditiveAttention(3, 4, 5, rngs=nnx.Rngs(0))
    p = {name: getattr(n, name)[...] for name in attention.ADDITIVE_NAMES}
    jax.tree.map(
        np.testing.assert_array_equal,
        n(query, keys, lengths),
        attention.additive_attention(p, query, keys, lengths),
    )

    q4, _, _ = _data(hq=4)
    for dot in (
        jaxrnn.linen.DotProductAttention(scale=True),
        jaxrnn.nnx.DotProductAttention(scale=True),
    ):
        got = dot.apply({}, q4, keys, lengths) if hasattr(dot, "apply") else dot(q4, keys, lengths)
        want = attention.dot_product_attention(q4, keys, lengths, scale=True)
        jax.tree.map(np.testing.assert_array_equal, got, want)


def test_bad_input_is_named():
    query, keys, lengths = _data()
    p = attention.init_additive(jax.random.key(0), 3, 4, 5)
    with pytest.raises(ValueError, match="same feature size"):
        attention.dot_product_attention(query, keys)
    with pytest.raises(ValueError, match=r"keys must be 3-D \(B, T, Hk\), got shape \(6, 4\)"):
        attention.dot_product_attention(query, keys[0])
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(4,\)"):
        attention.additive_attention(p, query, keys, lengths[:2])
    with pytest.raises(TypeError, match="lengths must be integers"):
        attention.additive_attention(p, query, keys, lengths.astype(np.float32))
    with pytest.raises(ValueError, match=r"params\['weight_query'\] should have shape \(5, 3\)"):
        attention.additive_attention({**p, "weight_query": p["weight_query"].T}, query, keys)
    with pytest.raises(ValueError, match=r"missing \['v'\]"):
        attention.additive_attention({k: v for k, v in p.items() if k != "v"}, query, keys)
