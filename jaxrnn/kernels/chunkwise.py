"""The mLSTM memory over a whole sequence: chunkwise (parallel within chunks of ``L`` steps,
recurrent across them) and, as the one-chunk case, the quadratic attention-like form.

Per head, with ``F_t`` the running sum of ``log f`` and ``ĩ_s = log i_s``, the memory after
step ``t`` is a weighted sum over the steps ``s <= t`` of its segment (no reset between
``s`` and ``t``) plus the decayed state the segment started from::

    C_t = exp(F_t - F_{b(t)} + m_base) C_base + Σ_s exp(F_t - F_s + ĩ_s) k_s v_sᵀ

(``b(t)`` the step before the segment start; ``C_base`` the carry for the first segment and
the reset state for the others; likewise ``n``). The stabilizer of step ``t`` is the largest
of these log-weights,

    m_t = max(F_t - F_{b(t)} + m_base, max_s F_t - F_s + ĩ_s),

which is exactly the recurrent ``m_t = max(log f_t + m_{t-1}, ĩ_t)`` unrolled, so the final
``(C, n, m)`` equal the recurrent step's, not just ``h``. A chunk computes its outputs from
the state at its start (an ``(L, L)`` masked, decayed ``q kᵀ`` per head) and its end state
from the same weights; a ``lax.scan`` over chunks carries the ``(B, NH, DH, DH)`` state only,
so no ``(T, B, NH, DH, DH)`` array is ever formed (the ``T / L`` chunk-start states are).

Padded steps (``valid`` false) are the identity (``log f = 0``, no input); a restart (a reset,
in loop order) makes its segment start from ``init``. Masked log-weights are a large finite
negative number, not ``-inf``, so no ``inf - inf`` reaches the gradients.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.families.base import Array, Family, Params
from jaxrnn.families.mlstm import projections

Carry = tuple[Array, Array, Array]
# The chunk length the "chunkwise" kernel uses (shorter sequences run as one chunk).
CHUNK = 64


def _neg(dtype) -> float:
    return float(jnp.finfo(dtype).min) / 4


def _check(q: Array, k: Array, v: Array, log_i: Array, log_f: Array, chunk_size: Any) -> None:
    if q.ndim != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"q, k, v must all be (T, B, NH, DH), got shapes {q.shape}, {k.shape}, {v.shape}"
        )
    if log_i.shape != q.shape[:3] or log_f.shape != q.shape[:3]:
        raise ValueError(
            f"log_i and log_f must be (T, B, NH) = {q.shape[:3]}, got {log_i.shape} and "
            f"{log_f.shape}"
        )
    steps = q.shape[0]
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if steps % chunk_size:
        raise ValueError(
            f"chunk_size={chunk_size} must divide the sequence length T={steps} "
            "(pad the sequence, or pick a divisor of T)"
        )


def zero_state(q: Array) -> Carry:
    """The zero state ``(C, n, m)`` for ``q (T, B, NH, DH)``."""
    _, b, h, d = q.shape
    return tuple(jnp.zeros(shape, q.dtype) for shape in ((b, h, d, d), (b, h, d), (b, h)))  # type: ignore[return-value]


def mlstm_chunkwise(
    q: Array,
    k: Array,
    v: Array,
    log_i: Array,
    log_f: Array,
    state: Carry | None = None,
    *,
    chunk_size: int = CHUNK,
    valid: Array | None = None,
    restart: Array | None = None,
    reset_state: Carry | None = None,
) -> tuple[Carry, Array]:
    """The mLSTM memory over ``T`` steps, chunk by chunk: returns ``((C, n, m), h̃)``.

    Args:
        q: ``(T, B, NH, DH)``, time-major, the queries (scaled by ``1/√DH`` here).
        k: ``(T, B, NH, DH)``, the keys.
        v: ``(T, B, NH, DH)``, the values.
        log_i: ``(T, B, NH)``, the input gate's pre-activation ``ĩ``.
        log_f: ``(T, B, NH)``, the log forget gate (``log σ(f̃)``, or ``f̃`` for an
            exponential forget gate).
        state: ``(C (B, NH, DH, DH), n (B, NH, DH), m (B, NH))`` before step 0 (zeros).
        chunk_size: steps per chunk ``L``; must divide ``T``. ``L = T`` is the quadratic form.
        valid: ``(T, B)`` bool; a padded step holds the state and its ``h̃`` is garbage.
        restart: ``(T, B)`` bool; the state becomes ``reset_state`` (default ``state``)
            before such a step.

    Returns:
        The state after step ``T - 1`` and ``h̃ (T, B, NH, DH)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.kernels.chunkwise import mlstm_chunkwise
        >>> q = k = v = jnp.ones((8, 2, 1, 4))
        >>> gates = jnp.zeros((8, 2, 1))
        >>> (c, n, m), h = mlstm_chunkwise(q, k, v, gates, gates, chunk_size=4)
        >>> c.shape, h.shape
        ((2, 1, 4, 4), (8, 2, 1, 4))
    """
    _check(q, k, v, log_i, log_f, chunk_size)
    state = zero_state(q) if state is None else state
    return _run(q, k, v, log_i, log_f, state, reset_state, valid, restart, chunk_size)


def _run(q, k, v, log_i, log_f, state, reset_state, valid, restart, chunk):
    steps, batch, heads, dim = q.shape
    dtype = jnp.result_type(q, k, v, log_i, log_f, *state)
    neg = _neg(dtype)
    q, k, v, log_i, log_f = (a.astype(dtype) for a in (q, k, v, log_i, log_f))
    state = tuple(s.astype(dtype) for s in state)
    if valid is not None:
        log_f = jnp.where(valid[..., None], log_f, 0)
        log_i = jnp.where(valid[..., None], log_i, neg)
    if restart is None:  # no resets: the segment bookkeeping below drops out
        reset_state = None
    elif reset_state is None:
        reset_state = state
    else:
        reset_state = tuple(s.astype(dtype) for s in reset_state)
    pad = -steps % chunk
    if pad:

        def extend(a, value):
            return jnp.concatenate([a, jnp.full((pad, *a.shape[1:]), value, a.dtype)])

        q, k, v, log_f = (extend(a, 0) for a in (q, k, v, log_f))
        log_i = extend(log_i, neg)
        restart = None if restart is None else extend(restart, False)
    chunks = (steps + pad) // chunk

    # (T, B, NH, ...) -> (NC, B, NH, L, ...)
    def split(a):
        a = a.reshape(chunks, chunk, *a.shape[1:])
        return jnp.moveaxis(a, 1, 3)

    q, k, v, log_i, log_f = (split(a) for a in (q, k, v, log_i, log_f))
    q = q * (dim**-0.5)
    cum_f = jnp.cumsum(log_f, axis=-1)  # F_t within the chunk, (NC, B, NH, L)
    positions = jnp.arange(chunk)
    end_weight = cum_f[..., -1:] - cum_f + log_i  # log-weight of step s in the chunk's end
    causal = positions[:, None] >= positions[None, :]
    if restart is None:
        base_decay, mask, segment = cum_f, causal, None
    else:
        restart = jnp.moveaxis(restart.reshape(chunks, chunk, batch), 1, 2)[:, :, None]
        segment = jnp.cumsum(restart, axis=-1)  # (NC, B, 1, L); 0: from the chunk's start
        last = jax.lax.cummax(jnp.where(restart, positions, -1), axis=restart.ndim - 1)
        before = jnp.take_along_axis(
            jnp.broadcast_to(cum_f - log_f, cum_f.shape),
            jnp.broadcast_to(jnp.maximum(last, 0), cum_f.shape),
            axis=-1,
        )
        # log decay from the state the step's segment started from (F before the restart)
        base_decay = cum_f - jnp.where(last >= 0, before, 0)
        end_weight = jnp.where(segment == segment[..., -1:], end_weight, neg)
        mask = causal & (segment[..., :, None] == segment[..., None, :])

    # The chunk's own contribution to its end state, stabilized by its largest log-weight.
    local_m = end_weight.max(axis=-1)
    safe_m = jnp.where(local_m > neg / 2, local_m, 0)
    e = jnp.exp(end_weight - safe_m[..., None])
    local_c = jnp.einsum("cbhs,cbhsk,cbhsv->cbhkv", e, k, v)
    local_n = jnp.einsum("cbhs,cbhsk->cbhk", e, k)

    def across(carry, inputs):
        decay, is_reset, lc, ln, lm = inputs
        base = carry if is_reset is None else jax.tree.map(
            lambda r, c: jnp.where(is_reset.reshape(is_reset.shape + (1,) * (c.ndim - 1)), r, c),
            reset_state, carry,
        )  # fmt: skip
        c0, n0, m0 = base
        m_new = jnp.maximum(decay + m0, lm)
        a = jnp.exp(decay + m0 - m_new)
        b = jnp.exp(lm - m_new)
        new = (
            a[..., None, None] * c0 + b[..., None, None] * lc,
            a[..., None] * n0 + b[..., None] * ln,
            m_new,
        )
        return new, carry

    has_reset = None if segment is None else segment[..., 0, -1] > 0  # (NC, B)
    final, starts = jax.lax.scan(
        across, state, (base_decay[..., -1], has_reset, local_c, local_n, local_m)
    )
    c_start, n_start, m_start = starts  # (NC, B, NH, ...): the state before each chunk

    # Outputs: the start state's part plus the masked, decayed q kᵀ within the chunk.
    m_base = m_start[..., None]
    qc = jnp.einsum("cbhlk,cbhkv->cbhlv", q, c_start)
    qn = jnp.einsum("cbhlk,cbhk->cbhl", q, n_start)
    if segment is not None:
        from_reset = jnp.broadcast_to(segment > 0, cum_f.shape)
        assert reset_state is not None
        rc, rn, rm = reset_state
        m_base = jnp.where(from_reset, rm[None, ..., None], m_base)
        qc = jnp.where(from_reset[..., None], jnp.einsum("cbhlk,bhkv->cbhlv", q, rc), qc)
        qn = jnp.where(from_reset, jnp.einsum("cbhlk,bhk->cbhl", q, rn), qn)
    log_base = base_decay + m_base
    log_d = cum_f[..., :, None] - cum_f[..., None, :] + log_i[..., None, :]
    log_d = jnp.where(mask, log_d, neg)
    m = jnp.maximum(log_base, log_d.max(axis=-1))
    scores = jnp.einsum("cbhtk,cbhsk->cbhts", q, k) * jnp.exp(log_d - m[..., None])
    base_scale = jnp.exp(log_base - m)
    numerator = base_scale[..., None] * qc + jnp.einsum("cbhts,cbhsv->cbhtv", scores, v)
    denominator = base_scale * qn + scores.sum(axis=-1)
    h = numerator / jnp.maximum(jnp.abs(denominator), jnp.exp(-m))[..., None]
    h = jnp.moveaxis(h, 3, 1).reshape(chunks * chunk, batch, heads, dim)[:steps]
    return final, h


# --- the kernels ---------------------------------------------------------------------------


def _kernel(chunk: int | None):
    def run(
        family: Family,
        params: Params,
        xs: Array,
        carry: Carry,
        *,
        init: Carry | None = None,
        valid: Array | None = None,
        resets: Array | None = None,
        mask: Array | None = None,
        reverse: bool = False,
        unroll: int | bool = 1,
        matmul_dtype: Any = None,
    ) -> tuple[Carry, Array]:
        """``xs (T, B, I) -> (final (C, n, m), ys (T, B, H))`` of the mLSTM family."""
        del family, mask, unroll, matmul_dtype  # refused by supports()
        q, k, v, log_i, log_f, o = projections(params, xs)
        restart = None
        if resets is not None:
            restart = resets if valid is None else resets & valid
        flip = functools.partial(jnp.flip, axis=0)
        if reverse:  # the loop runs T-1 -> 0: run it forwards over the flipped sequence
            q, k, v, log_i, log_f = map(flip, (q, k, v, log_i, log_f))
            valid = None if valid is None else flip(valid)
            restart = None if restart is None else flip(restart)
        steps = xs.shape[0]
        size = steps if chunk is None else min(chunk, steps)
        final, h = _run(q, k, v, log_i, log_f, carry, init, valid, restart, size)
        if reverse:
            h = flip(h)
            valid = None if valid is None else flip(valid)
        ys = o * h.reshape(o.shape)
        if valid is not None:
            ys = jnp.where(valid[..., None], ys, jnp.zeros_like(ys))
        return final, ys

    return run


run_chunkwise = _kernel(CHUNK)
run_quadratic = _kernel(None)
FAMILIES = ("mlstm",)
