"""Elman RNN, ``torch.nn.RNN``: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, tanh or relu.

Two families, ``rnn_tanh`` and ``rnn_relu``, as PyTorch's ``nonlinearity`` picks; parameters
``weight_ih (H, I)``, ``weight_hh (H, H)``, ``bias_ih (H,)``, ``bias_hh (H,)``; carry ``h (B, H)``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrnn.families.base import (
    Array,
    Cell,
    Family,
    Fused,
    Params,
    affine_shapes,
    affine_sizes,
    cast,
    contract,
    gate_preactivations,
    hold,
    masked_outputs,
    matmul,
    projection_free,
    shifted,
    vector_state,
)


def rnn_tanh_cell(params: Params, carry: Array, x: Array) -> tuple[Array, Array]:
    """Elman step ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``; carry ``h`` is ``(B, H)``."""
    gi, gh = gate_preactivations(params, carry, x)
    h = jnp.tanh(gi + gh)
    return h, h


def rnn_relu_cell(params: Params, carry: Array, x: Array) -> tuple[Array, Array]:
    """Elman step ``h' = relu(W_ih x + b_ih + W_hh h + b_hh)``; carry ``h`` is ``(B, H)``."""
    gi, gh = gate_preactivations(params, carry, x)
    h = jax.nn.relu(gi + gh)
    return h, h


def _fused(act: Callable[[Array], Array], tanh: bool) -> Fused:
    """The fused loop: one ``[x_t, h] @ [W_ih; W_hh]^T`` a step; after the loop, every weight
    gradient is one contraction over all ``T * B`` rows."""

    def forward(p: Params, xs, carry, valid, mask, *, reverse, unroll, mm_dtype, save):
        w = cast(jnp.concatenate([p["weight_ih"], p["weight_hh"]], axis=1).T, mm_dtype)
        # The two biases are summed in the step's dtype (a float64 input with float32
        # weights must not carry float32 rounding of the sum).
        dt = jnp.result_type(xs, *p.values())
        b = None if "bias_ih" not in p else p["bias_ih"].astype(dt) + p["bias_hh"].astype(dt)

        def step(h, inputs):
            x, v = inputs
            h_in = h if mask is None else h * mask
            z = matmul(jnp.concatenate([x, h_in], axis=-1), w, mm_dtype)
            new_h = hold(v, act(z if b is None else z + b), h)
            return new_h, new_h

        final, hs = jax.lax.scan(step, carry, (xs, valid), reverse=reverse, unroll=unroll)
        return final, masked_outputs(hs, valid), ((hs,) if save else None)

    def backward(p: Params, xs, h0, valid, mask, saved, d_final, d_ys, *, reverse, unroll,
                 mm_dtype):  # fmt: skip
        (hs,) = saved
        v = None if valid is None else valid[..., None].astype(xs.dtype)  # (T, B, 1)
        coef = 1 - hs * hs if tanh else (hs > 0).astype(xs.dtype)
        keep = None
        if v is not None:
            d_ys, coef, keep = d_ys * v, coef * v, 1 - v
        whh = cast(p["weight_hh"], mm_dtype)

        def bstep(dh, inputs):
            dy, coef_t, keep_t = inputs
            dh = dh + dy
            dz = dh * coef_t
            dh_prev = matmul(dz, whh, mm_dtype)
            if mask is not None:
                dh_prev = dh_prev * mask
            if keep_t is not None:
                dh_prev = dh_prev + dh * keep_t
            return dh_prev, dz

        dh0, dz = jax.lax.scan(
            bstep, d_final, (d_ys, coef, keep), reverse=not reverse, unroll=unroll
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
        return grads, matmul(dz, p["weight_ih"], mm_dtype), dh0

    return Fused(forward, backward)


def _elman(name: str, cell: Cell, act: Callable[[Array], Array], tanh: bool) -> Family:
    return Family(
        name=name,
        cell=cell,
        param_shapes=lambda sizes: affine_shapes(1, sizes),
        read_sizes=affine_sizes(1),
        state_shapes=vector_state,
        kernels=("fused", "scan"),
        fused=_fused(act, tanh),
        check_sizes=projection_free(name),
    )


RNN_TANH = _elman("rnn_tanh", rnn_tanh_cell, jnp.tanh, True)
RNN_RELU = _elman("rnn_relu", rnn_relu_cell, jax.nn.relu, False)
