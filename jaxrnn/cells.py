"""Recurrent cells as pure functions: ``cell(params, carry, x) -> (carry, y)``.

A cell advances one time step. ``params`` is a mapping with PyTorch's per-layer names
(``weight_ih``, ``weight_hh``, optional ``bias_ih``/``bias_hh``, and ``weight_hr`` for an
LSTM with projection); ``x`` is ``(B, I)`` and every array in ``carry`` is ``(B, ·)``.
Gate blocks are stacked along the first weight axis in PyTorch's order, so a state_dict
slice drops in unchanged. Any function with this signature runs through
:func:`jaxrnn.scan.scan` and :func:`jaxrnn.functional.stack`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Mapping[str, Array]
Carry = Any
Cell = Callable[[Params, Carry, Array], tuple[Carry, Array]]


def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    """``x @ weight.T + bias``, PyTorch's ``(out, in)`` weight layout: ``(B, in) -> (B, out)``."""
    y = x @ weight.T
    return y if bias is None else y + bias


def gate_preactivations(params: Params, h: Array, x: Array) -> tuple[Array, Array]:
    """The input and recurrent affine maps of a step, each ``(B, G*H)`` with its bias added."""
    return (
        linear(x, params["weight_ih"], params.get("bias_ih")),
        linear(h, params["weight_hh"], params.get("bias_hh")),
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


def gru_cell(params: Params, carry: Array, x: Array) -> tuple[Array, Array]:
    """GRU step with PyTorch's formula; carry ``h`` is ``(B, H)``.

    ``r, z = σ(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})``,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
    """
    gi, gh = gate_preactivations(params, carry, x)
    h = gru_update(gi, gh, carry)
    return h, h


def gru_update(gi: Array, gh: Array, h: Array) -> Array:
    """The GRU's gates from its preactivations ``gi, gh`` (``(B, 3H)``) and state ``h``."""
    ir, iz, in_ = jnp.split(gi, 3, axis=-1)
    hr, hz, hn = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(ir + hr)
    z = jax.nn.sigmoid(iz + hz)
    n = jnp.tanh(in_ + r * hn)
    return n + z * (h - n)
