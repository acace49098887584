"""Attention over encoder outputs for seq2seq decoders, as pure functions.

``query`` is the decoder state, ``(B, Hq)`` for one step or ``(B, S, Hq)`` for ``S`` steps
at once; ``keys`` are the encoder outputs ``(B, T, Hk)``, which also serve as the values.
``lengths`` (``(B,)``) masks each sequence's padding: its weights are exactly zero there and
sum to one over the valid steps. Both functions return ``(context, weights)``: ``context``
is ``(B, Hk)`` (or ``(B, S, Hk)``) and ``weights`` ``(B, T)`` (or ``(B, S, T)``).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

Array = jax.Array

ADDITIVE_NAMES = ("weight_query", "weight_key", "bias", "v")


def _check(query: Array, keys: Array, lengths: Array | None) -> Array | None:
    if keys.ndim != 3:
        raise ValueError(f"keys must be 3-D (B, T, Hk), got shape {keys.shape}")
    if query.ndim not in (2, 3) or query.shape[0] != keys.shape[0]:
        raise ValueError(
            f"query must be (B, Hq) or (B, S, Hq) with B = {keys.shape[0]} as in keys, "
            f"got shape {query.shape}"
        )
    if lengths is None:
        return None
    lengths = jnp.asarray(lengths)
    if lengths.shape != (keys.shape[0],):
        raise ValueError(
            f"lengths must have shape (B,) = ({keys.shape[0]},), got shape {lengths.shape}"
        )
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    return lengths


def masked_softmax(scores: Array, lengths: Array | None) -> Array:
    """Softmax over the last axis ``T`` of ``scores (B, ..., T)``, restricted to ``t < lengths``.

    Padded steps get exactly ``0``; a sequence of length 0 gets all zeros (no NaN).

    Args:
        scores: ``(B, T)`` or ``(B, S, T)`` attention scores.
        lengths: ``(B,)`` integer valid lengths, or ``None`` for a plain softmax.

    Returns:
        Weights of the shape of ``scores``, summing to one over each sequence's valid steps.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.attention import masked_softmax
        >>> masked_softmax(jnp.zeros((2, 4)), jnp.array([4, 2])).tolist()
        [[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]]
    """
    if lengths is None:
        return jax.nn.softmax(scores, axis=-1)
    steps = jnp.arange(scores.shape[-1])
    mask = steps < lengths.reshape(lengths.shape + (1,) * (scores.ndim - 1))
    top = jax.lax.stop_gradient(jnp.max(jnp.where(mask, scores, -jnp.inf), -1, keepdims=True))
    top = jnp.where(jnp.isfinite(top), top, 0)
    # exp(-inf) is an exact 0 with a zero gradient, so padding never leaks into the sum.
    e = jnp.exp(jnp.where(mask, scores - top, -jnp.inf))
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(total > 0, total, 1)


def _attend(scores: Array, keys: Array, lengths: Array | None) -> tuple[Array, Array]:
    weights = masked_softmax(scores, lengths)
    if weights.ndim == 2:
        return jnp.einsum("bt,bth->bh", weights, keys), weights
    return jnp.einsum("bst,bth->bsh", weights, keys), weights


def dot_product_attention(
    query: Array, keys: Array, lengths: Array | None = None, *, scale: bool = False
) -> tuple[Array, Array]:
    """Luong's "dot" attention, ``score_t = query · keys_t``: ``-> (context, weights)``.

    ``query`` and ``keys`` share the feature size ``H``. ``scale=True`` divides the scores by
    ``sqrt(H)`` (as in Transformers); Luong et al. (2015) do not.

    Args:
        query: the decoder state, ``(B, H)`` for one step or ``(B, S, H)`` for ``S`` steps.
        keys: the encoder outputs ``(B, T, H)``, which also serve as the values.
        lengths: ``(B,)`` valid lengths of ``keys``; padded steps get weight exactly 0.
        scale: divide the scores by ``sqrt(H)``.

    Returns:
        ``(context, weights)``: ``context`` ``(B, H)`` (or ``(B, S, H)``), the weighted sum
        of ``keys``, and ``weights`` ``(B, T)`` (or ``(B, S, T)``).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.attention import dot_product_attention
        >>> keys = jnp.ones((2, 5, 8))
        >>> context, weights = dot_product_attention(jnp.ones((2, 8)), keys, jnp.array([5, 2]))
        >>> context.shape, weights.shape, weights[1].tolist()
        ((2, 8), (2, 5), [0.5, 0.5, 0.0, 0.0, 0.0])
    """
    lengths = _check(query, keys, lengths)
    if query.shape[-1] != keys.shape[-1]:
        raise ValueError(
            f"dot-product attention needs query and keys of the same feature size, got "
            f"query {query.shape} and keys {keys.shape}; project one of them first"
        )
    if query.ndim == 2:
        scores = jnp.einsum("bh,bth->bt", query, keys)
    else:
        scores = jnp.einsum("bsh,bth->bst", query, keys)
    if scale:
        scores = scores / jnp.sqrt(jnp.asarray(keys.shape[-1], scores.dtype))
    return _attend(scores, keys, lengths)


def additive_shapes(query_size: int, key_size: int, features: int) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of :func:`additive_attention` (PyTorch's ``(out, in)``).

    Args:
        query_size: ``Hq``, the feature size of the query.
        key_size: ``Hk``, the feature size of the keys.
        features: ``A``, the size of the hidden layer of the score.

    Returns:
        ``{"weight_query": (A, Hq), "weight_key": (A, Hk), "bias": (A,), "v": (A,)}``.

    Examples:
        >>> from jaxrnn.attention import additive_shapes
        >>> additive_shapes(12, 16, 10)
        {'weight_query': (10, 12), 'weight_key': (10, 16), 'bias': (10,), 'v': (10,)}
    """
    return {
        "weight_query": (features, query_size),
        "weight_key": (features, key_size),
        "bias": (features,),
        "v": (features,),
    }


def init_additive_param(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
    """``U(-1/sqrt(n), 1/sqrt(n))`` with ``n = shape[-1]``, as ``torch.nn.Linear`` draws.

    Args:
        key: a JAX PRNG key.
        shape: the parameter's shape; its last axis is the fan-in ``n``.
        dtype: the parameter's dtype.

    Returns:
        An array of ``shape``.

    Examples:
        >>> import jax
        >>> from jaxrnn.attention import init_additive_param
        >>> w = init_additive_param(jax.random.key(0), (10, 16))
        >>> w.shape, bool(abs(w).max() <= 0.25)
        ((10, 16), True)
    """
    bound = 1.0 / jnp.sqrt(shape[-1])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def init_additive(
    key: Array, query_size: int, key_size: int, features: int, dtype=jnp.float32
) -> dict[str, Array]:
    """Fresh parameters for :func:`additive_attention`.

    Args:
        key: a JAX PRNG key.
        query_size: ``Hq``, the feature size of the query.
        key_size: ``Hk``, the feature size of the keys.
        features: ``A``, the size of the hidden layer of the score.
        dtype: the parameters' dtype.

    Returns:
        A dict named and shaped as :func:`additive_shapes` says.

    Examples:
        >>> import jax
        >>> from jaxrnn.attention import init_additive
        >>> params = init_additive(jax.random.key(0), query_size=12, key_size=16, features=10)
        >>> {name: p.shape for name, p in params.items()}["weight_key"]
        (10, 16)
    """
    shapes = additive_shapes(query_size, key_size, features)
    keys = jax.random.split(key, len(shapes))
    return {
        n: init_additive_param(k, s, dtype) for k, (n, s) in zip(keys, shapes.items(), strict=True)
    }


def additive_attention(
    params: Mapping[str, Array], query: Array, keys: Array, lengths: Array | None = None
) -> tuple[Array, Array]:
    """Bahdanau's additive attention: ``-> (context, weights)``.

    ``score_t = v · tanh(W_q query + W_k keys_t + bias)`` with ``params`` named as in
    :func:`additive_shapes` (``weight_query (A, Hq)``, ``weight_key (A, Hk)``, ``bias (A,)``,
    ``v (A,)``).

    Args:
        params: the four parameters above (:func:`init_additive` makes fresh ones).
        query: the decoder state, ``(B, Hq)`` for one step or ``(B, S, Hq)`` for ``S`` steps.
        keys: the encoder outputs ``(B, T, Hk)``, which also serve as the values.
        lengths: ``(B,)`` valid lengths of ``keys``; padded steps get weight exactly 0.

    Returns:
        ``(context, weights)``: ``context`` ``(B, Hk)`` (or ``(B, S, Hk)``) and ``weights``
        ``(B, T)`` (or ``(B, S, T)``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrnn.attention import additive_attention, init_additive
        >>> params = init_additive(jax.random.key(0), query_size=12, key_size=16, features=10)
        >>> keys, lengths = jnp.ones((2, 7, 16)), jnp.array([7, 3])
        >>> context, weights = additive_attention(params, jnp.ones((2, 4, 12)), keys, lengths)
        >>> context.shape, weights.shape, float(weights[1, :, 3:].sum())
        ((2, 4, 16), (2, 4, 7), 0.0)
    """
    lengths = _check(query, keys, lengths)
    missing = [n for n in ADDITIVE_NAMES if n not in params]
    if missing:
        raise ValueError(
            f"additive attention params need {list(ADDITIVE_NAMES)}, missing {missing}"
        )
    want = additive_shapes(query.shape[-1], keys.shape[-1], params["v"].shape[0])
    for name, shape in want.items():
        if params[name].shape != shape:
            raise ValueError(
                f"params[{name!r}] should have shape {shape} for query {query.shape} and keys "
                f"{keys.shape}, got {params[name].shape}"
            )
    k = keys @ params["weight_key"].T + params["bias"]  # (B, T, A), once for all queries
    q = query @ params["weight_query"].T  # (B, A) or (B, S, A)
    q = q[:, None, :] if query.ndim == 2 else q[:, :, None, :]
    if query.ndim == 3:
        k = k[:, None]
    scores = jnp.tanh(q + k) @ params["v"]
    return _attend(scores, keys, lengths)
