"""mLSTM, the matrix-memory cell of xLSTM: Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp,
Klambauer, Brandstetter & Hochreiter 2024, "xLSTM: Extended Long Short-Term Memory"
(arXiv:2405.04517), §2.3 and Appendix A.3, with the state and scaling conventions of the
authors' ``mlstm_kernels`` package (2.0.6).

Per head (``NH`` heads of width ``DH = H / NH``), with ``q, k, v`` the head's slices of
``W_q x + b_q``, ``W_k x + b_k``, ``W_v x + b_v`` and scalar gate pre-activations
``ĩ, f̃`` (``W_if x + b_if``)::

    m_t = max(log σ(f̃_t) + m_{t-1}, ĩ_t)
    i'_t = exp(ĩ_t - m_t),  f'_t = exp(log σ(f̃_t) + m_{t-1} - m_t)
    C_t = f'_t C_{t-1} + i'_t k_t v_tᵀ                  (DH, DH)
    n_t = f'_t n_{t-1} + i'_t k_t                        (DH,)
    h̃_t = C_tᵀ q̂_t / max(|n_tᵀ q̂_t|, exp(-m_t)),  q̂_t = q_t / √DH
    h_t = σ(W_o x_t + b_o) ⊙ h̃_t                        (all heads, (H,))

``C, n`` are the paper's states scaled by ``exp(-m)``, so the denominator is the paper's
``max(|ñᵀq̂|, 1)`` and ``h`` does not depend on the stabilizer: the recurrent step, the
quadratic form and the chunkwise form (:mod:`jaxrnn.kernels.chunkwise`) agree to rounding
whatever stabilizer each uses. The ``1/√DH`` is applied to the query, as ``mlstm_kernels``
does (the paper scales the key; ``h`` is the same, the stored ``C, n`` are ``√DH`` larger).
``mlstm_kernels`` adds ``eps = 1e-6`` to the denominator; this file does not (its ``eps=0.0``
reproduces this family exactly).

Parameters (one layer-direction): ``weight_q, weight_k, weight_v, weight_o (H, I)``, their
biases ``bias_q, bias_k, bias_v, bias_o (H,)``, and ``weight_if (2*NH, I)``, ``bias_if
(2*NH,)`` holding ``ĩ`` for every head, then ``f̃`` for every head. Family option
``num_heads`` (default 1), read back off ``weight_if``. Carry ``(C (B, NH, DH, DH),
n (B, NH, DH), m (B, NH))``, ``C`` indexed ``[key, value]`` as in ``mlstm_kernels``; final
states ``(C_n, n_n, m_n)``. No recurrence goes through ``h``: the kernels ``"chunkwise"``
(the default) and ``"quadratic"`` run a whole sequence at once, ``"scan"`` runs :func:`cell`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxrnn.families._common import project
from jaxrnn.families.base import Array, Family, Params, Sizes
from jaxrnn.families.slstm import check_heads

Carry = tuple[Array, Array, Array]


def num_heads(params: Params) -> int:
    """The number of heads, read off ``weight_if (2*NH, I)``."""
    return int(params["weight_if"].shape[0]) // 2


def projections(params: Params, x: Array) -> tuple[Array, Array, Array, Array, Array, Array]:
    """``x (..., I)`` -> ``q, k, v (..., NH, DH)``, ``log_i, log_f (..., NH)``, ``o (..., H)``.

    ``log_i = ĩ`` (the exponential input gate's log) and ``log_f = log σ(f̃)``; ``o`` is the
    output gate ``σ(W_o x + b_o)``. One matmul over all the projections.
    """
    heads = num_heads(params)
    hidden = params["weight_q"].shape[0]
    names = ("q", "k", "v", "o", "if")
    weight = jnp.concatenate([params[f"weight_{n}"] for n in names], axis=0)
    bias = None
    if "bias_q" in params:
        bias = jnp.concatenate([params[f"bias_{n}"] for n in names], axis=0)
    z = project(x, weight, bias)
    lead = x.shape[:-1]
    q, k, v, o = (z[..., j * hidden : (j + 1) * hidden] for j in range(4))
    q, k, v = (a.reshape(*lead, heads, hidden // heads) for a in (q, k, v))
    gates = z[..., 4 * hidden :]
    return q, k, v, gates[..., :heads], jax.nn.log_sigmoid(gates[..., heads:]), jax.nn.sigmoid(o)


def recurrent_step(
    carry: Carry, q: Array, k: Array, v: Array, log_i: Array, log_f: Array
) -> tuple[Carry, Array]:
    """One mLSTM memory step per head: ``q, k, v (B, NH, DH)``, ``log_i, log_f (B, NH)`` ->
    ``(C, n, m)`` and ``h̃ (B, NH, DH)``."""
    c, n, m = carry
    m_new = jnp.maximum(log_f + m, log_i)
    f_gate = jnp.exp(log_f + m - m_new)
    i_gate = jnp.exp(log_i - m_new)
    outer = k[..., :, None] * v[..., None, :]
    c_new = f_gate[..., None, None] * c + i_gate[..., None, None] * outer
    n_new = f_gate[..., None] * n + i_gate[..., None] * k
    q = q * (q.shape[-1] ** -0.5)
    numerator = jnp.einsum("...k,...kv->...v", q, c_new)
    denominator = jnp.maximum(jnp.abs(jnp.einsum("...k,...k->...", q, n_new)), jnp.exp(-m_new))
    return (c_new, n_new, m_new), numerator / denominator[..., None]


def cell(params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
    """One mLSTM step: ``x (B, I)``, carry ``(C, n, m)`` -> ``h (B, H)``."""
    q, k, v, log_i, log_f, o = projections(params, x)
    carry, h = recurrent_step(carry, q, k, v, log_i, log_f)
    return carry, o * h.reshape(o.shape)


def _check_sizes(sizes: Sizes) -> None:
    if sizes.proj_size:
        raise ValueError(f"the mLSTM has no projection, got proj_size={sizes.proj_size}")
    check_heads(sizes.hidden_size, sizes.option("num_heads", 1))


def _shapes(sizes: Sizes) -> dict[str, tuple[int, ...]]:
    _check_sizes(sizes)
    h, i, heads = sizes.hidden_size, sizes.input_size, sizes.option("num_heads", 1)
    shapes: dict[str, tuple[int, ...]] = {}
    for name in ("q", "k", "v", "o"):
        shapes[f"weight_{name}"] = (h, i)
    shapes["weight_if"] = (2 * heads, i)
    if sizes.bias:
        for name in ("q", "k", "v", "o"):
            shapes[f"bias_{name}"] = (h,)
        shapes["bias_if"] = (2 * heads,)
    return shapes


def _read_sizes(params: Params) -> Sizes:
    w, g = params["weight_q"], params["weight_if"]
    if getattr(w, "ndim", None) != 2 or getattr(g, "ndim", None) != 2 or g.shape[0] % 2:
        raise ValueError(
            "an mLSTM needs weight_q (H, I) and weight_if (2*num_heads, I), got shapes "
            f"{getattr(w, 'shape', None)} and {getattr(g, 'shape', None)}"
        )
    return Sizes(int(w.shape[1]), int(w.shape[0]), options=(("num_heads", int(g.shape[0]) // 2),))


def _state_shapes(sizes: Sizes, batch: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    heads = sizes.option("num_heads", 1)
    d = sizes.hidden_size // heads
    return (*batch, heads, d, d), (*batch, heads, d), (*batch, heads)


def _init(key: Array, name: str, shape: tuple[int, ...], sizes: Sizes, dtype) -> Array:
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every projection (torch.nn.Linear's bound).
    bound = 1.0 / math.sqrt(sizes.input_size)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


MLSTM = Family(
    name="mlstm",
    cell=cell,
    param_shapes=_shapes,
    read_sizes=_read_sizes,
    state_shapes=_state_shapes,
    state_names=("C_n", "n_n", "m_n"),
    # "chunkwise" and "quadratic" (jaxrnn.kernels.chunkwise) name this family themselves.
    kernels=("scan",),
    init=_init,
    check_sizes=_check_sizes,
    options=(("num_heads", 1),),
    recurrent_dropout=False,
)
