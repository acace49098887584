"""LSTM, ``torch.nn.LSTM``, with PyTorch's optional output projection (``proj_size``).

Parameters ``weight_ih (4H, I)``, ``weight_hh (4H, P)``, ``bias_ih (4H,)``, ``bias_hh (4H,)``
with gate blocks ``(i, f, g, o)`` in PyTorch's order, and ``weight_hr (P, H)`` when
``proj_size = P > 0`` (else ``P = H``). Carry ``(h (B, P), c (B, H))``; final state
``(h_n, c_n)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.families.base import (
    Array,
    Family,
    Fused,
    Params,
    Sizes,
    affine_shapes,
    affine_sizes,
    cast,
    contract,
    gate_preactivations,
    hold,
    linear,
    masked_outputs,
    matmul,
    shifted,
)


def lstm_cell(params: Params, carry: tuple[Array, Array], x: Array) -> tuple[tuple, Array]:
    """LSTM step, gates in PyTorch's order (i, f, g, o); carry ``(h (B, P), c (B, H))``.

    With ``weight_hr`` (``(P, H)``) present the output is projected, ``h' = W_hr (o * tanh c')``,
    as in ``torch.nn.LSTM(proj_size=P)``; without it ``P == H``.
    """
    h, c = carry
    gi, gh = gate_preactivations(params, h, x)
    i, f, g, o = jnp.split(gi + gh, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    if "weight_hr" in params:
        h = linear(h, params["weight_hr"])
    return (h, c), h


def _shapes(sizes: Sizes) -> dict[str, tuple[int, ...]]:
    shapes = affine_shapes(4, sizes)
    if sizes.proj_size:
        shapes["weight_hr"] = (sizes.proj_size, sizes.hidden_size)
    return shapes


def _read_sizes(params: Params) -> Sizes:
    sizes = affine_sizes(4)(params)
    hr = params.get("weight_hr")
    proj = int(hr.shape[0]) if getattr(hr, "ndim", 0) >= 1 else 0  # type: ignore[union-attr]
    return Sizes(sizes.input_size, sizes.hidden_size, proj_size=proj)


def _state_shapes(sizes: Sizes, batch: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    return ((*batch, sizes.proj_size or sizes.hidden_size), (*batch, sizes.hidden_size))


def _check_sizes(sizes: Sizes) -> None:
    if sizes.proj_size and not 0 < sizes.proj_size < sizes.hidden_size:
        raise ValueError(
            f"proj_size has to be a positive integer smaller than hidden_size "
            f"({sizes.hidden_size}), got {sizes.proj_size}"
        )


def _activations(z: Array) -> Array:
    """``(sigmoid(i), sigmoid(f), tanh(g), sigmoid(o))`` of a ``(..., 4H)`` block, one tanh."""
    h = z.shape[-1] // 4
    half, one, zero = (jnp.asarray(v, z.dtype) for v in (0.5, 1.0, 0.0))
    scale = jnp.concatenate([jnp.full((2 * h,), half), jnp.full((h,), one), jnp.full((h,), half)])
    shift = jnp.concatenate([jnp.full((2 * h,), half), jnp.full((h,), zero), jnp.full((h,), half)])
    return jnp.tanh(z * scale) * scale + shift


def _forward(p: Params, xs, carry, valid, mask, *, reverse, unroll, mm_dtype, save):
    # One [x_t, h] @ [W_ih; W_hh]^T a step beats two matmuls, and beats hoisting x @ W_ih
    # out of the loop, whose (T, B, 4H) buffer must then be streamed through every step.
    w = cast(jnp.concatenate([p["weight_ih"], p["weight_hh"]], axis=1).T, mm_dtype)
    # The two biases are summed in the step's dtype (a float64 input with float32 weights
    # must not carry float32 rounding of the sum).
    dt = jnp.result_type(xs, *p.values())
    b = None if "bias_ih" not in p else p["bias_ih"].astype(dt) + p["bias_hh"].astype(dt)
    whr_t = cast(p["weight_hr"].T, mm_dtype) if "weight_hr" in p else None

    def step(c, inputs):
        x, v = inputs
        h, cell = c
        h_in = h if mask is None else h * mask
        z = matmul(jnp.concatenate([x, h_in], axis=-1), w, mm_dtype)
        a = _activations(z if b is None else z + b)
        i, f, g, o = jnp.split(a, 4, axis=-1)
        new_c = f * cell + i * g
        m = o * jnp.tanh(new_c)
        new_h = m if whr_t is None else matmul(m, whr_t, mm_dtype)
        new_h, new_c = hold(v, new_h, h), hold(v, new_c, cell)
        if not save:
            return (new_h, new_c), new_h
        return (new_h, new_c), ((new_h, new_c, a, m) if whr_t is not None else (new_h, new_c, a))

    out: Any
    final, out = jax.lax.scan(step, carry, (xs, valid), reverse=reverse, unroll=unroll)
    hs = out[0] if save else out
    return final, masked_outputs(hs, valid), (out if save else None)


def _backward(p: Params, xs, carry, valid, mask, saved, d_final, d_ys, *, reverse, unroll,
              mm_dtype):  # fmt: skip
    # The reverse loop keeps only the recurrent chain, one (B, 4H) @ (4H, P) matmul a step;
    # everything independent of the incoming gradient is computed before it, vectorised.
    h0, c0 = carry
    hs, cs, a = saved[:3]
    v = None if valid is None else valid[..., None].astype(xs.dtype)
    whh = cast(p["weight_hh"], mm_dtype)
    whr = cast(p["weight_hr"], mm_dtype) if "weight_hr" in p else None
    i, f, g, o = jnp.split(a, 4, axis=-1)
    c_prev = shifted(cs, c0, reverse)
    tc = jnp.tanh(cs)
    # d(pre-activation) = [dc, dc, dc, dm] * coef; dc += dm * e; dc_prev = dc * keep
    coef = jnp.concatenate(
        [g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g), tc * o * (1 - o)], axis=-1
    )
    e = o * (1 - tc * tc)
    keep = f
    if v is not None:
        d_ys, coef, e, keep = d_ys * v, coef * v, e * v, jnp.where(v > 0, f, 1)

    def bstep(dc_, inputs):
        dh, dcell = dc_
        dy, coef_t, e_t, keep_t, v_t = inputs
        dh = dh + dy
        dm = dh if whr is None else matmul(dh, whr, mm_dtype)
        dcell = dcell + dm * e_t
        dz = jnp.concatenate([dcell, dcell, dcell, dm], axis=-1) * coef_t
        dh_prev = matmul(dz, whh, mm_dtype)
        if mask is not None:
            dh_prev = dh_prev * mask
        if v_t is not None:
            dh_prev = dh_prev + dh * (1 - v_t)
        # dh of every step is only needed for dW_hr
        return (dh_prev, dcell * keep_t), (dz, dh if whr is not None else None)

    (dh0, dc0), (dz, dh_all) = jax.lax.scan(
        bstep, d_final, (d_ys, coef, e, keep, v), reverse=not reverse, unroll=unroll
    )
    h_in = shifted(hs, h0, reverse)
    if mask is not None:
        h_in = h_in * mask
    grads = {
        "weight_ih": contract("tbg,tbi->gi", dz, xs, mm_dtype),
        "weight_hh": contract("tbg,tbp->gp", dz, h_in, mm_dtype),
    }
    if "bias_ih" in p:
        grads["bias_ih"] = grads["bias_hh"] = dz.sum(axis=(0, 1))
    if whr is not None:
        assert dh_all is not None
        dh_v = dh_all if v is None else dh_all * v
        grads["weight_hr"] = contract("tbp,tbh->ph", dh_v, saved[3], mm_dtype)
    return grads, matmul(dz, p["weight_ih"], mm_dtype), (dh0, dc0)


LSTM = Family(
    name="lstm",
    cell=lstm_cell,
    param_shapes=_shapes,
    read_sizes=_read_sizes,
    state_shapes=_state_shapes,
    state_names=("h_n", "c_n"),
    kernels=("fused", "scan"),
    fused=Fused(_forward, _backward),
    check_sizes=_check_sizes,
)
