"""Linear-chain conditional random field (CRF): training by the forward algorithm, Viterbi decoding.

Pure functions over a parameter dict ``{"transitions": (K, K), "start": (K,), "end": (K,)}``
(``start`` / ``end`` optional) and batch-first emission scores ``(B, T, K)``. A tag path
``y`` of a sequence of length ``L`` scores::

    start[y_0] + sum_{t<L} emissions[t, y_t] + sum_{0<t<L} transitions[y_{t-1}, y_t] + end[y_{L-1}]

and ``p(y | x) = exp(score(y)) / Z`` with ``Z`` the sum over all ``K**L`` paths (the same
model and numbers as PyTorch's ``pytorch-crf``, whose ``mask`` is ``lengths`` here).

* :func:`log_likelihood` ``log p(tags | emissions)``, per sequence ``(B,)``;
  :func:`log_partition` ``log Z``; :func:`sequence_score` ``score(tags)``.
* :func:`viterbi_decode` the best path ``(B, T)`` and its score ``(B,)``.
* :func:`bio_constraints` allowed transitions of a BIO / IOB2 tag set, built from the tag
  names; pass it as ``constraints=`` to training and decoding alike. A forbidden transition or
  first tag gets :data:`FORBIDDEN` (a large negative, finite score, so gradients stay finite).
* :func:`marginals` ``p(y_t = k | x)``, ``(B, T, K)``.

``lengths`` ``(B,)`` ints in ``[0, T]`` (``None``: all ``T``): the steps ``t >= lengths[b]``
are ignored exactly (their emissions and tags do not change any result); decoded tags there
are :data:`PAD_TAG` (0). A length-0 sequence has log-likelihood 0 and Viterbi score 0.

``method``: ``"scan"`` runs the recursions as a ``lax.scan`` over time (``O(T K^2)`` work,
``T`` sequential steps); ``"parallel"`` as an associative scan of the log-semiring
(``logsumexp``-``+``) or max-plus matrix products (``O(T K^3)`` work, ``log T`` depth), with
the Viterbi path recovered by composing back-pointer maps in a second associative scan;
``"auto"`` picks ``"scan"`` on CPU, where it was measured faster at every shape, and
``"parallel"`` on accelerators for long sequences over few tags (see :func:`choose_method`).
Both give the same numbers up to round-off.

Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jaxrnn import crf
    >>> tags = ["O", "B-loc", "I-loc"]
    >>> params = crf.init_params(jax.random.key(0), len(tags))
    >>> emissions = jax.random.normal(jax.random.key(1), (2, 5, 3))   # (B, T, K)
    >>> gold = jnp.array([[1, 2, 0, 0, 0], [0, 1, 2, 2, 0]])
    >>> lengths = jnp.array([3, 5])
    >>> rules = crf.bio_constraints(tags)
    >>> nll = -crf.log_likelihood(params, emissions, gold, lengths, constraints=rules).mean()
    >>> paths, scores = crf.viterbi_decode(params, emissions, lengths, constraints=rules)
    >>> paths.shape, scores.shape
    ((2, 5), (2,))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = Mapping[str, Array]
Method = Literal["auto", "scan", "parallel"]

FORBIDDEN = -1e4
"""Score added to a forbidden transition / first / last tag: ``exp(-1e4)`` is 0 in float32 and
float64, so forbidden paths drop out of ``Z`` exactly while gradients stay finite."""
PAD_TAG = 0
"""Tag id :func:`viterbi_decode` writes at padded steps ``t >= lengths[b]``."""

__all__ = [
    "FORBIDDEN",
    "PAD_TAG",
    "Constraints",
    "apply_constraints",
    "bio_constraints",
    "choose_method",
    "init_params",
    "log_likelihood",
    "log_partition",
    "marginals",
    "sequence_score",
    "viterbi_decode",
]


class Constraints(NamedTuple):
    """Allowed moves, ``True`` = allowed: ``transitions[i, j]`` (tag ``j`` right after tag
    ``i``), ``start[k]`` (``k`` may open a sequence), ``end[k]`` (``k`` may close one)."""

    transitions: np.ndarray  # (K, K) bool
    start: np.ndarray  # (K,) bool
    end: np.ndarray  # (K,) bool


def bio_constraints(tag_names: Sequence[str]) -> Constraints:
    """BIO / IOB2 rules from tag names (``"O"``, ``"B-x"``, ``"I-x"``): ``I-x`` may only follow
    ``B-x`` or ``I-x`` and may not open a sequence; everything else is allowed.

    Other names (a padding tag such as ``"<pad>"``) are treated like ``"O"``.

    Examples:
        >>> c = bio_constraints(["O", "B-loc", "I-loc"])
        >>> c.transitions.astype(int).tolist(), c.start.tolist()
        ([[1, 1, 0], [1, 1, 1], [1, 1, 1]], [True, True, False])
    """
    if isinstance(tag_names, str) or not isinstance(tag_names, Sequence):
        raise TypeError(f"tag_names must be a list of strings, got {type(tag_names).__name__}")
    names = list(tag_names)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"tag_names must be a non-empty list of strings, got {names!r}")
    k = len(names)
    ok = np.ones((k, k), bool)
    for j, tj in enumerate(names):
        if tj.startswith("I-"):
            for i, ti in enumerate(names):
                ok[i, j] = ti[:2] in ("B-", "I-") and ti[2:] == tj[2:]
    start = np.array([not n.startswith("I-") for n in names])
    return Constraints(ok, start, np.ones(k, bool))


def init_params(
    key: Array, num_tags: int, *, start_end: bool = True, dtype=jnp.float32, scale: float = 0.1
) -> dict[str, Array]:
    """``{"transitions": (K, K)[, "start": (K,), "end": (K,)]}`` drawn from
    ``U(-scale, scale)``, as ``pytorch-crf`` initialises them."""
    if not isinstance(num_tags, int | np.integer) or num_tags < 1:
        raise ValueError(f"num_tags must be a positive int, got {num_tags!r}")
    k1, k2, k3 = jax.random.split(key, 3)
    u = jax.random.uniform
    params = {"transitions": u(k1, (num_tags, num_tags), dtype, -scale, scale)}
    if start_end:
        params["start"] = u(k2, (num_tags,), dtype, -scale, scale)
        params["end"] = u(k3, (num_tags,), dtype, -scale, scale)
    return params


def apply_constraints(params: Params, constraints: Constraints | None) -> dict[str, Array]:
    """``params`` with :data:`FORBIDDEN` added where ``constraints`` forbid (and explicit zero
    ``start`` / ``end`` if absent)."""
    trans = jnp.asarray(params["transitions"])
    k = trans.shape[-1]
    zeros = jnp.zeros((k,), trans.dtype)
    out = {
        "transitions": trans,
        "start": jnp.asarray(params["start"]) if "start" in params else zeros,
        "end": jnp.asarray(params["end"]) if "end" in params else zeros,
    }
    if constraints is None:
        return out
    if not isinstance(constraints, Constraints):
        raise TypeError(
            f"constraints must be a jaxrnn.crf.Constraints (e.g. from bio_constraints), "
            f"got {type(constraints).__name__}"
        )
    for name, shape in (("transitions", (k, k)), ("start", (k,)), ("end", (k,))):
        allowed = np.asarray(getattr(constraints, name))
        if allowed.shape != shape:
            raise ValueError(
                f"constraints.{name} must have shape {shape} for {k} tags, got {allowed.shape}"
            )
        out[name] = out[name] + jnp.where(jnp.asarray(allowed, bool), 0.0, FORBIDDEN).astype(
            out[name].dtype
        )
    return out


# --- checks ------------------------------------------------------------------------------


def _check(
    params: Params, emissions: Array, lengths: Array | None, constraints: Constraints | None
) -> tuple[dict[str, Array], Array, Array]:
    if not isinstance(params, Mapping) or "transitions" not in params:
        raise TypeError(
            "params must be a dict with 'transitions' (K, K) and optional 'start', 'end' (K,), "
            f"got {type(params).__name__}"
            + (f" with keys {sorted(params)}" if isinstance(params, Mapping) else "")
        )
    emissions = jnp.asarray(emissions)
    if not jnp.issubdtype(emissions.dtype, jnp.floating):
        raise TypeError(f"emissions must be a floating-point array, got dtype {emissions.dtype}")
    if emissions.ndim != 3:
        raise ValueError(f"emissions must be 3-D (B, T, K), got shape {emissions.shape}")
    b, t, k = emissions.shape
    if t < 1 or k < 1:
        raise ValueError(f"emissions (B, T, K) needs T >= 1 and K >= 1, got {emissions.shape}")
    for name in ("transitions", "start", "end"):
        if name not in params:
            continue
        p = jnp.asarray(params[name])
        want = (k, k) if name == "transitions" else (k,)
        if p.shape != want:
            raise ValueError(
                f"params['{name}'] must have shape {want} for emissions with K = {k} tags, "
                f"got {p.shape}"
            )
        if not jnp.issubdtype(p.dtype, jnp.floating):
            raise TypeError(f"params['{name}'] must be floating-point, got dtype {p.dtype}")
    p = apply_constraints(params, constraints)
    dtype = jnp.promote_types(jnp.result_type(emissions, *p.values()), jnp.float32)
    p = {name: v.astype(dtype) for name, v in p.items()}
    if lengths is None:
        lengths = jnp.full((b,), t, jnp.int32)
    else:
        lengths = jnp.asarray(lengths)
        if not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
        if lengths.shape != (b,):
            raise ValueError(f"lengths must have shape (B,) = ({b},), got {lengths.shape}")
    return p, emissions.astype(dtype), lengths


def _check_tags(tags: Array, emissions: Array) -> Array:
    tags = jnp.asarray(tags)
    if not jnp.issubdtype(tags.dtype, jnp.integer):
        raise TypeError(f"tags must be integer tag ids, got dtype {tags.dtype}")
    if tags.shape != emissions.shape[:2]:
        raise ValueError(
            f"tags must have shape (B, T) = {emissions.shape[:2]} like emissions (B, T, K), "
            f"got {tags.shape}"
        )
    return tags


def choose_method(
    batch: int, steps: int, num_tags: int, method: Method = "auto", backend: str | None = None
) -> str:
    """``"scan"`` or ``"parallel"`` for emissions ``(batch, steps, num_tags)``.

    ``"auto"``: on CPU always ``"scan"``: measured on 2 cores (``benchmarks/crf_methods.py``),
    the sequential scan beat the associative scan at every shape tried, from ``(8, 512, 2)``
    (1.9x for training, 7x for Viterbi) to ``(32, 20, 72)`` (450x: ``O(T K^3)`` work). On an
    accelerator (``backend`` other than ``"cpu"``; default: JAX's) ``"parallel"`` for long
    sequences over few tags, ``T >= 64`` and ``K <= 16``, where its ``log T`` depth should pay
    (not measured here).
    """
    if method not in ("auto", "scan", "parallel"):
        raise ValueError(f"method must be 'auto', 'scan' or 'parallel', got {method!r}")
    if method != "auto":
        return method
    if (backend or jax.default_backend()) == "cpu":
        return "scan"
    return "parallel" if steps >= 64 and num_tags <= 16 else "scan"


# --- semiring products -------------------------------------------------------------------


def _log_matmul(a: Array, b: Array) -> Array:
    """Log-semiring product ``c[..., i, j] = logsumexp_k a[..., i, k] + b[..., k, j]``."""
    return jax.nn.logsumexp(a[..., :, :, None] + b[..., None, :, :], axis=-2)


def _max_matmul(a: Array, b: Array) -> Array:
    """Max-plus product ``c[..., i, j] = max_k a[..., i, k] + b[..., k, j]``."""
    return jnp.max(a[..., :, :, None] + b[..., None, :, :], axis=-2)


def _step_matrices(p: dict[str, Array], emissions: Array) -> Array:
    """``(B, T, K, K)``: step 0 holds ``start + e_0`` in every row, step ``t`` holds
    ``transitions + e_t``; row 0 of their prefix product is the forward vector at ``t``."""
    b, _, k = emissions.shape
    first = jnp.broadcast_to((p["start"] + emissions[:, 0])[:, None, :], (b, k, k))
    rest = p["transitions"][None, None] + emissions[:, 1:, None, :]
    return jnp.concatenate([first[:, None], rest], axis=1)


def _at_last(x: Array, lengths: Array) -> Array:
    """``x[b, lengths[b] - 1]`` of ``(B, T, ...)`` (index 0 for length 0)."""
    idx = jnp.clip(lengths - 1, 0, x.shape[1] - 1)
    return jnp.take_along_axis(x, idx.reshape(-1, *([1] * (x.ndim - 1))), axis=1)[:, 0]


# --- forward algorithm -------------------------------------------------------------------


def _forward_scan(p: dict[str, Array], emissions: Array, lengths: Array) -> Array:
    def step(alpha, inputs):
        e, t = inputs
        new = jax.nn.logsumexp(alpha[:, :, None] + p["transitions"][None], axis=1) + e
        return jnp.where((t < lengths)[:, None], new, alpha), None

    alpha0 = p["start"][None] + emissions[:, 0]
    steps = jnp.arange(1, emissions.shape[1])
    alpha, _ = jax.lax.scan(step, alpha0, (emissions[:, 1:].swapaxes(0, 1), steps))
    return alpha


def _forward_parallel(p: dict[str, Array], emissions: Array, lengths: Array) -> Array:
    prefix = jax.lax.associative_scan(_log_matmul, _step_matrices(p, emissions), axis=1)
    return _at_last(prefix[:, :, 0, :], lengths)


def log_partition(
    params: Params,
    emissions: Array,
    lengths: Array | None = None,
    *,
    constraints: Constraints | None = None,
    method: Method = "auto",
) -> Array:
    """``log Z``: log of the summed ``exp(score)`` of all tag paths, ``(B, T, K) -> (B,)``."""
    p, emissions, lengths = _check(params, emissions, lengths, constraints)
    b, t, k = emissions.shape
    if choose_method(b, t, k, method) == "parallel":
        alpha = _forward_parallel(p, emissions, lengths)
    else:
        alpha = _forward_scan(p, emissions, lengths)
    log_z = jax.nn.logsumexp(alpha + p["end"][None], axis=-1)
    return jnp.where(lengths > 0, log_z, 0.0)


def sequence_score(
    params: Params,
    emissions: Array,
    tags: Array,
    lengths: Array | None = None,
    *,
    constraints: Constraints | None = None,
) -> Array:
    """``score(tags)`` of the given paths ``tags (B, T)`` (padded steps ignored): ``(B,)``."""
    p, emissions, lengths = _check(params, emissions, lengths, constraints)
    tags = _check_tags(tags, emissions)
    t = emissions.shape[1]
    mask = jnp.arange(t)[None, :] < lengths[:, None]
    emit = jnp.take_along_axis(emissions, tags[..., None], axis=-1)[..., 0]
    score = jnp.sum(jnp.where(mask, emit, 0.0), axis=1)
    trans = p["transitions"][tags[:, :-1], tags[:, 1:]]
    score += jnp.sum(jnp.where(mask[:, 1:], trans, 0.0), axis=1)
    score += p["start"][tags[:, 0]] + p["end"][_at_last(tags, lengths)]
    return jnp.where(lengths > 0, score, 0.0)


def log_likelihood(
    params: Params,
    emissions: Array,
    tags: Array,
    lengths: Array | None = None,
    *,
    constraints: Constraints | None = None,
    method: Method = "auto",
) -> Array:
    """``log p(tags | emissions) = score(tags) - log Z``, per sequence: ``(B,)``.

    Args:
        params: ``{"transitions": (K, K)}`` plus optional ``"start"``, ``"end"`` ``(K,)``.
        emissions: ``(B, T, K)`` float scores of each tag at each step (e.g. a tagger's logits).
        tags: ``(B, T)`` int gold tag ids (values at padded steps are ignored).
        lengths: ``(B,)`` ints, or ``None`` for all ``T``.
        constraints: allowed moves (:func:`bio_constraints`); gold paths that break them get
            about ``FORBIDDEN`` per broken rule.
        method: ``"auto"``, ``"scan"`` or ``"parallel"`` (see the module docstring).

    Sum or average it yourself: ``pytorch-crf``'s ``reduction="sum"`` is ``.sum()``,
    ``"token_mean"`` is ``.sum() / lengths.sum()``.
    """
    score = sequence_score(params, emissions, tags, lengths, constraints=constraints)
    return score - log_partition(params, emissions, lengths, constraints=constraints, method=method)


def marginals(
    params: Params,
    emissions: Array,
    lengths: Array | None = None,
    *,
    constraints: Constraints | None = None,
    method: Method = "auto",
) -> Array:
    """``p(y_t = k | x)`` of every step and tag, ``(B, T, K)`` (0 at padded steps): the
    gradient of ``log Z`` with respect to the emissions."""
    p, emissions, lengths = _check(params, emissions, lengths, constraints)

    def total(e):
        return jnp.sum(log_partition(p, e, lengths, method=method))

    return jax.grad(total)(emissions)


# --- Viterbi -----------------------------------------------------------------------------


def _viterbi_scan(p: dict[str, Array], emissions: Array, lengths: Array) -> tuple[Array, Array]:
    b, t, k = emissions.shape
    identity = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32), (b, k))

    def step(delta, inputs):
        e, s = inputs
        cand = delta[:, :, None] + p["transitions"][None]  # (B, K_prev, K)
        best = jnp.argmax(cand, axis=1).astype(jnp.int32)
        new = jnp.max(cand, axis=1) + e
        live = (s < lengths)[:, None]
        return jnp.where(live, new, delta), jnp.where(live, best, identity)

    delta0 = p["start"][None] + emissions[:, 0]
    steps = jnp.arange(1, t)
    delta, back = jax.lax.scan(step, delta0, (emissions[:, 1:].swapaxes(0, 1), steps))
    final = delta + p["end"][None]
    last = jnp.argmax(final, axis=-1).astype(jnp.int32)

    def backtrack(tag, pointers):
        prev = jnp.take_along_axis(pointers, tag[:, None], axis=1)[:, 0]
        return prev, prev

    _, earlier = jax.lax.scan(backtrack, last, back, reverse=True)  # earlier[s] = y_s
    path = jnp.concatenate([earlier.T, last[:, None]], axis=1)
    return path, jnp.max(final, axis=-1)


def _viterbi_parallel(p: dict[str, Array], emissions: Array, lengths: Array) -> tuple[Array, Array]:
    b, t, k = emissions.shape
    prefix = jax.lax.associative_scan(_max_matmul, _step_matrices(p, emissions), axis=1)
    delta = prefix[:, :, 0, :]  # (B, T, K): best score of a path ending in k at t
    final = _at_last(delta, lengths) + p["end"][None]
    last = jnp.argmax(final, axis=-1).astype(jnp.int32)
    # back[:, s, j]: best tag at s - 1 before tag j at s; identity at s = 0 and padded steps
    cand = delta[:, :-1, :, None] + p["transitions"][None, None]  # (B, T-1, K_prev, K)
    back = jnp.argmax(cand, axis=2).astype(jnp.int32)
    identity = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32), (b, 1, k))
    live = (jnp.arange(1, t)[None, :] < lengths[:, None])[..., None]
    back = jnp.concatenate([identity, jnp.where(live, back, identity)], axis=1)

    # y_s = (back_{s+1} o back_{s+2} o ... o back_{T-1})(last): suffix compositions of maps
    def compose(outer, inner):  # (outer o inner)[j] = outer[inner[j]]; outer acts later
        return jnp.take_along_axis(outer, inner, axis=-1)

    shifted = jnp.concatenate([back[:, 1:], identity], axis=1)  # map from y_{s+1} to y_s
    suffix = jax.lax.associative_scan(lambda a, c: compose(c, a), shifted, axis=1, reverse=True)
    path = jnp.take_along_axis(suffix, last[:, None, None].repeat(t, 1), axis=-1)[..., 0]
    return path, jnp.max(final, axis=-1)


def viterbi_decode(
    params: Params,
    emissions: Array,
    lengths: Array | None = None,
    *,
    constraints: Constraints | None = None,
    method: Method = "auto",
) -> tuple[Array, Array]:
    """The highest-scoring tag path of each sequence and its score.

    Args:
        params: the CRF's scores, as in :func:`log_likelihood`.
        emissions: ``(B, T, K)`` per-step tag scores.
        lengths: ``(B,)`` valid steps per sequence (default ``T``).
        constraints: allowed transitions (:func:`bio_constraints`), as in training.
        method: ``"auto"``, ``"scan"`` or ``"parallel"``.

    Returns:
        ``(paths, scores)``: ``paths (B, T)`` int32 tag ids, :data:`PAD_TAG` at ``t >=
        lengths[b]``; ``scores (B,)`` the path scores (``score(paths)``, 0 for length 0).
        With constraints, the path avoids forbidden moves unless every path breaks one (or
        emissions differ by more than ``-FORBIDDEN``).
    """
    p, emissions, lengths = _check(params, emissions, lengths, constraints)
    b, t, k = emissions.shape
    if choose_method(b, t, k, method) == "parallel":
        path, score = _viterbi_parallel(p, emissions, lengths)
    else:
        path, score = _viterbi_scan(p, emissions, lengths)
    mask = jnp.arange(t)[None, :] < lengths[:, None]
    return jnp.where(mask, path, PAD_TAG), jnp.where(lengths > 0, score, 0.0)
