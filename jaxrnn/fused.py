"""Fused time loops for the built-in cells, with a hand-written backward pass.

:func:`scan` is a drop-in for :func:`jaxrnn.scan.scan` when the cell is one of
:mod:`jaxrnn.cells`' built-ins (named by ``mode``). It computes the same function; what
changes is how the loops are laid out for XLA:

* Autodiff of a scanned cell gives a reverse loop with four small matmuls a step (``dx``,
  ``dW_ih``, ``dh``, ``dW_hh``). Here the reverse loop keeps only the recurrent chain, one
  ``(B, G*H) @ (G*H, P)`` matmul a step; ``dW_ih``, ``dW_hh``, ``dW_hr``, the biases and ``dx``
  are each one large matmul or sum over all ``T*B`` rows after the loop.
* Everything the reverse loop needs that does not depend on the incoming gradient (the gate
  derivatives, masks) is computed before it, vectorised over all steps, so each reverse step
  is one multiply, one matmul and a few adds.
* Gate activations are one ``tanh`` over the whole ``(B, G*H)`` block, with
  ``sigmoid(x) = (1 + tanh(x / 2)) / 2``: XLA's CPU ``logistic`` on each gate slice inside a
  loop costs several times more.
* The input and recurrent projections are one matmul ``[x_t, h] @ [W_ih; W_hh]^T`` where the
  cell allows it (RNN, LSTM): per step this beats two matmuls, and beats hoisting ``x @ W_ih``
  out of the loop, whose ``(T, B, G*H)`` buffer must then be streamed through every step.

* ``matmul_dtype`` (e.g. bf16) casts the operands of every matmul, forward and backward, and
  keeps sums, gates and state in the input's dtype: weights are cast once, before the loops.

Gradients are tested against ``jax.grad`` of the generic scan (``tests/test_fast_backward.py``)
and, with bf16 matmuls, against ``jax.grad`` of the same bf16 math (``tests/test_matmul_dtype.py``).
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp

from jaxrnn import cells
from jaxrnn.cells import Array, Carry, Cell, Params

Mode = Literal["rnn_tanh", "rnn_relu", "lstm", "gru"]

_MODES: dict[Cell, Mode] = {
    cells.rnn_tanh_cell: "rnn_tanh",
    cells.rnn_relu_cell: "rnn_relu",
    cells.lstm_cell: "lstm",
    cells.gru_cell: "gru",
}


def mode_of(cell: Cell) -> Mode | None:
    """The fused mode that computes ``cell``, or ``None`` for a cell without one (user cells)."""
    return _MODES.get(cell)


def _lstm_act(z: Array) -> Array:
    """``(sigmoid(i), sigmoid(f), tanh(g), sigmoid(o))`` of a ``(..., 4H)`` block, one tanh."""
    h = z.shape[-1] // 4
    half = jnp.asarray(0.5, z.dtype)
    one = jnp.asarray(1.0, z.dtype)
    zero = jnp.asarray(0.0, z.dtype)
    scale = jnp.concatenate([jnp.full((2 * h,), half), jnp.full((h,), one), jnp.full((h,), half)])
    shift = jnp.concatenate([jnp.full((2 * h,), half), jnp.full((h,), zero), jnp.full((h,), half)])
    return jnp.tanh(z * scale) * scale + shift


def _sigmoid(z: Array) -> Array:
    return 0.5 * jnp.tanh(0.5 * z) + 0.5


def _hold(v: Array | None, new: Array, old: Array) -> Array:
    """``new`` where step is valid (``v`` is ``(B,)`` bool), else ``old``."""
    return new if v is None else jnp.where(v[:, None], new, old)


def _shifted(seq: Array, first: Array, reverse: bool) -> Array:
    """The carry *before* each step: ``seq`` moved one step along the loop, ``first`` in front."""
    if reverse:
        return jnp.concatenate([seq[1:], first[None]], axis=0)
    return jnp.concatenate([first[None], seq[:-1]], axis=0)


def _contract(spec: str, a: Array, b: Array, dtype) -> Array:
    """``jnp.einsum(spec, a, b)``; with a ``dtype``, the operands are cast to it and the
    product is accumulated and returned in their own promoted dtype (bf16 in, float32 sums)."""
    if dtype is None:
        return jnp.einsum(spec, a, b)
    out = jnp.result_type(a, b)
    return jnp.einsum(spec, a.astype(dtype), b.astype(dtype), preferred_element_type=out)


def _matmul(a: Array, b: Array, dtype) -> Array:
    """``a @ b`` for ``a (..., K)`` and ``b (K, N)``, cast as in :func:`_contract`."""
    return a @ b if dtype is None else _contract("...k,kn->...n", a, b, dtype)


def _cast(w: Array | None, dtype) -> Array | None:
    """A weight cast once, before the loop, to the matmul dtype (if any)."""
    return w if w is None or dtype is None else w.astype(dtype)


def _masks(lengths: Array | None, steps: Array) -> Array | None:
    """``(T, B)`` bool: step ``t`` is valid for sequence ``b``."""
    return None if lengths is None else steps[:, None] < lengths[None, :]


# --- forward --------------------------------------------------------------------------------


def _input_weight(mode: Mode, p: Params) -> tuple[Array, Array | None]:
    """The per-step weight ``(I[+P], G*H)`` and bias of the forward matmul."""
    if mode == "gru":
        w = p["weight_ih"].T
        b = p.get("bias_ih")
    else:
        w = jnp.concatenate([p["weight_ih"], p["weight_hh"]], axis=1).T
        b = None if "bias_ih" not in p else p["bias_ih"] + p["bias_hh"]
    return w, b


def _forward(mode: Mode, p: Params, xs, carry, valid, *, reverse, unroll, mm_dtype, save: bool):
    """One loop over time. Returns ``(final carry, ys, residuals)`` (residuals if ``save``)."""
    w, b = _input_weight(mode, p)
    w = _cast(w, mm_dtype)
    whh_t = _cast(p["weight_hh"].T, mm_dtype)
    bhh = p.get("bias_hh")
    whr_t = _cast(p["weight_hr"].T, mm_dtype) if "weight_hr" in p else None

    def step(c, inputs):
        x, v = inputs
        if mode == "lstm":
            h, cell = c
            z = _matmul(jnp.concatenate([x, h], axis=-1), w, mm_dtype)
            a = _lstm_act(z if b is None else z + b)
            i, f, g, o = jnp.split(a, 4, axis=-1)
            new_c = f * cell + i * g
            m = o * jnp.tanh(new_c)
            new_h = m if whr_t is None else _matmul(m, whr_t, mm_dtype)
            new_h, new_c = _hold(v, new_h, h), _hold(v, new_c, cell)
            saved = (new_h, new_c, a, m) if whr_t is not None else (new_h, new_c, a)
            return (new_h, new_c), saved
        if mode == "gru":
            h = c
            zi = _matmul(x, w, mm_dtype)
            zh = _matmul(h, whh_t, mm_dtype)
            if b is not None:
                zi, zh = zi + b, zh + bhh
            ir, iu, in_ = jnp.split(zi, 3, axis=-1)
            hr, hu, hn = jnp.split(zh, 3, axis=-1)
            ru = _sigmoid(jnp.concatenate([ir + hr, iu + hu], axis=-1))
            r, u = jnp.split(ru, 2, axis=-1)
            n = jnp.tanh(in_ + r * hn)
            new_h = _hold(v, n + u * (h - n), h)
            return new_h, (new_h, jnp.concatenate([ru, n, hn], axis=-1))
        h = c
        z = _matmul(jnp.concatenate([x, h], axis=-1), w, mm_dtype)
        z = z if b is None else z + b
        new_h = _hold(v, jnp.tanh(z) if mode == "rnn_tanh" else jax.nn.relu(z), h)
        return new_h, (new_h,)

    def plain_step(c, inputs):
        c, saved = step(c, inputs)
        return c, saved[0]

    body = step if save else plain_step
    final, out = jax.lax.scan(body, carry, (xs, valid), reverse=reverse, unroll=unroll)
    hs = out[0] if save else out
    ys = hs if valid is None else jnp.where(valid[..., None], hs, jnp.zeros_like(hs))
    return final, ys, (out if save else None)


# --- backward -------------------------------------------------------------------------------


def _backward(
    mode: Mode, p: Params, xs, carry, valid, saved, d_final, d_ys, *, reverse, unroll, mm_dtype
):
    """Cotangents of ``(params, xs, carry)`` from those of ``(final carry, ys)``."""
    dt = xs.dtype
    v = None if valid is None else valid[..., None].astype(dt)  # (T, B, 1)
    if v is not None:
        d_ys = d_ys * v  # padded outputs are constant zeros
    whh = _cast(p["weight_hh"], mm_dtype)
    whr = _cast(p.get("weight_hr"), mm_dtype)

    if mode == "lstm":
        h0, c0 = carry
        hs, cs, a = saved[:3]
        i, f, g, o = jnp.split(a, 4, axis=-1)
        c_prev = _shifted(cs, c0, reverse)
        tc = jnp.tanh(cs)
        # d(pre-activation) = [dc, dc, dc, dm] * coef; dc += dm * e; dc_prev = dc * keep
        coef = jnp.concatenate(
            [g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g), tc * o * (1 - o)], axis=-1
        )
        e = o * (1 - tc * tc)
        keep = f
        if v is not None:
            coef, e, keep = coef * v, e * v, jnp.where(v > 0, f, 1)
        seqs = (d_ys, coef, e, keep, v)

        def bstep(dc_, inputs):
            dh, dcell = dc_
            dy, coef_t, e_t, keep_t, v_t = inputs
            dh = dh + dy
            dm = dh if whr is None else _matmul(dh, whr, mm_dtype)
            dcell = dcell + dm * e_t
            dz = jnp.concatenate([dcell, dcell, dcell, dm], axis=-1) * coef_t
            dh_prev = _matmul(dz, whh, mm_dtype)
            if v_t is not None:
                dh_prev = dh_prev + dh * (1 - v_t)
            # dh of every step is only needed for dW_hr
            return (dh_prev, dcell * keep_t), (dz, dh if whr is not None else None)

        (dh0, dc0), (dz, dh_all) = jax.lax.scan(
            bstep, d_final, seqs, reverse=not reverse, unroll=unroll
        )
        d_carry = (dh0, dc0)
        h_prev = _shifted(hs, h0, reverse)
        dzh = dz
    elif mode == "gru":
        h0 = carry
        hs, acts = saved
        r, u, n, hn = jnp.split(acts, 4, axis=-1)
        h_prev = _shifted(hs, h0, reverse)
        dn_ = (1 - u) * (1 - n * n)  # d n-preactivation / dh
        coef_i = jnp.concatenate([dn_ * hn * r * (1 - r), (h_prev - n) * u * (1 - u), dn_], -1)
        coef_h = jnp.concatenate([coef_i[..., : -n.shape[-1]], dn_ * r], axis=-1)
        keep = u
        if v is not None:
            coef_i, coef_h, keep = coef_i * v, coef_h * v, jnp.where(v > 0, u, 1)
        seqs = (d_ys, coef_h, keep)

        def bstep(dh, inputs):
            dy, coef_t, keep_t = inputs
            dh = dh + dy
            dzh = jnp.concatenate([dh, dh, dh], axis=-1) * coef_t
            return _matmul(dzh, whh, mm_dtype) + dh * keep_t, (dzh, dh)

        dh0, (dzh, dh_all) = jax.lax.scan(bstep, d_final, seqs, reverse=not reverse, unroll=unroll)
        d_carry = dh0
        dz = jnp.concatenate([dh_all, dh_all, dh_all], axis=-1) * coef_i
    else:
        h0 = carry
        (hs,) = saved
        coef = 1 - hs * hs if mode == "rnn_tanh" else (hs > 0).astype(dt)
        keep = None
        if v is not None:
            coef, keep = coef * v, 1 - v
        seqs = (d_ys, coef, keep)

        def bstep(dh, inputs):
            dy, coef_t, keep_t = inputs
            dh = dh + dy
            dz = dh * coef_t
            dh_prev = _matmul(dz, whh, mm_dtype)
            if keep_t is not None:
                dh_prev = dh_prev + dh * keep_t
            return dh_prev, dz

        dh0, dz = jax.lax.scan(bstep, d_final, seqs, reverse=not reverse, unroll=unroll)
        d_carry = dh0
        h_prev = _shifted(hs, h0, reverse)
        dzh = dz

    # The weight, bias and input gradients: one contraction over all T * B rows each.
    grads = {
        "weight_ih": _contract("tbg,tbi->gi", dz, xs, mm_dtype),
        "weight_hh": _contract("tbg,tbp->gp", dzh, h_prev, mm_dtype),
    }
    if "bias_ih" in p:
        grads["bias_ih"] = dz.sum(axis=(0, 1))
        grads["bias_hh"] = dzh.sum(axis=(0, 1))
    if whr is not None:
        dh_v = dh_all if v is None else dh_all * v
        grads["weight_hr"] = _contract("tbp,tbh->ph", dh_v, saved[3], mm_dtype)
    dxs = _matmul(dz, p["weight_ih"], mm_dtype)
    grads = {k: grads[k].astype(p[k].dtype) for k in p}
    return grads, dxs, d_carry


# --- custom_vjp wiring ----------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 5, 6, 7))
def _fused(mode, p, xs, carry, valid, reverse, unroll, mm_dtype):
    final, ys, _ = _forward(
        mode, p, xs, carry, valid, reverse=reverse, unroll=unroll, mm_dtype=mm_dtype, save=False
    )
    return final, ys


def _fused_fwd(mode, p, xs, carry, valid, reverse, unroll, mm_dtype):
    final, ys, saved = _forward(
        mode, p, xs, carry, valid, reverse=reverse, unroll=unroll, mm_dtype=mm_dtype, save=True
    )
    return (final, ys), (p, xs, carry, valid, saved)


def _fused_bwd(mode, reverse, unroll, mm_dtype, res, cts):
    p, xs, carry, valid, saved = res
    d_final, d_ys = cts
    grads, dxs, d_carry = _backward(
        mode, p, xs, carry, valid, saved, d_final, d_ys,
        reverse=reverse, unroll=unroll, mm_dtype=mm_dtype,
    )  # fmt: skip
    # Cotangents take their primal's dtype (inputs, weights and carry may differ, e.g. bf16 x).
    d_carry = jax.tree.map(lambda d, c: d.astype(c.dtype), d_carry, carry)
    return grads, dxs.astype(xs.dtype), d_carry, None


_fused.defvjp(_fused_fwd, _fused_bwd)


def scan(
    mode: Mode,
    params: Params,
    xs: Array,
    carry: Carry,
    *,
    lengths: Array | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    steps: Array | None = None,
    matmul_dtype: jnp.dtype | None = None,
) -> tuple[Carry, Array]:
    """:func:`jaxrnn.scan.scan` of the built-in cell ``mode``: ``xs (T, B, I) -> (carry, ys)``.

    Same arguments and results (``lengths`` masking, ``reverse``, ``unroll``); ``steps``
    (``(T,)``) are the time indices of ``xs`` that ``lengths`` refers to (default
    ``arange(T)``), so a chunk of a longer sequence can be run on its own. ``matmul_dtype``
    (e.g. ``jnp.bfloat16``) casts every matmul's operands to it, accumulating in the
    operands' own dtype; gates, state and outputs keep that dtype.
    """
    if mode not in _MODES.values():
        raise ValueError(f"mode must be one of {sorted(_MODES.values())}, got {mode!r}")
    valid = None
    if lengths is not None:
        if steps is None:
            steps = jnp.arange(xs.shape[0], dtype=jnp.int32)
        valid = _masks(lengths, steps)
    p = dict(params)
    return _fused(mode, p, xs, carry, valid, reverse, unroll, matmul_dtype)
