"""Variational (time-shared) dropout for recurrent layers (Gal & Ghahramani, 2016).

Ordinary dropout draws a fresh mask at every time step, which destroys the recurrent state
it is meant to regularize. Variational dropout draws ONE mask per sequence and reuses it at
every step: on the layer's input ``x_t`` and on the state ``h_{t-1}`` where it enters the
recurrent weights ``W_hh``. The layers (:func:`jaxrnn.functional.stack`) draw the masks and
hand the recurrent one to the kernel, so the fused loops keep running. :func:`variational`
wraps a cell for use on its own, with the masks in its parameter mapping.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import families
from jaxrnn.families.base import Array, Carry, Cell, Params, hidden_of

INPUT_MASK = "input_mask"
RECURRENT_MASK = "recurrent_mask"

hidden_state = hidden_of


def check_rate(name: str, rate: Any) -> None:
    """A dropout rate must be a number in ``[0, 1]`` (``1`` drops everything, as PyTorch)."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= float(rate) <= 1:
        raise ValueError(
            f"{name} should be a number in range [0, 1] representing the probability of an "
            f"element being zeroed, got {rate!r}"
        )


def dropout_mask(
    key: Array, shape: tuple[int, ...], rate: float, dtype: Any = jnp.float32
) -> Array:
    """A dropout mask of ``shape``: ``0`` with probability ``rate``, else ``1 / (1 - rate)``."""
    check_rate("rate", rate)
    if rate >= 1.0:
        return jnp.zeros(shape, dtype)
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return jnp.where(keep, jnp.asarray(1.0 / (1.0 - rate), dtype), jnp.zeros((), dtype))


def _family_of(cell: Cell) -> families.Family | None:
    return next((families.get(n) for n in families.names() if families.get(n).cell is cell), None)


@functools.cache
def variational(cell: Cell) -> Cell:
    """``cell`` with time-shared dropout masks read from its params.

    ``params["input_mask"]`` (``(B, I)``) multiplies every ``x_t``;
    ``params["recurrent_mask"]`` (``(B, H)``) multiplies ``h_{t-1}`` where it enters ``W_hh``.
    Either may be absent. Works for any cell whose carry is ``h`` or ``(h, ...)`` and in which
    ``h_{t-1}`` is used only through ``W_hh`` (Elman, LSTM); a built-in family that reads it
    elsewhere (the GRU's update) is handled exactly by its own masked step.
    """
    family = _family_of(cell) or families.custom(cell)

    def dropped(params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
        params = dict(params)
        input_mask = params.pop(INPUT_MASK, None)
        recurrent_mask = params.pop(RECURRENT_MASK, None)
        if input_mask is not None:
            x = x * input_mask
        return family.step_with_mask(params, carry, x, recurrent_mask)

    dropped.__name__ = f"variational_{getattr(cell, '__name__', 'cell')}"
    return dropped


def with_masks(
    key: Array,
    params: Params,
    carry: Carry,
    input_size: int,
    *,
    input_rate: float = 0.0,
    recurrent_rate: float = 0.0,
    dtype: Any = jnp.float32,
) -> dict[str, Array]:
    """``params`` plus freshly drawn masks for :func:`variational` (none at rate 0)."""
    h = hidden_of(carry)
    k_in, k_rec = jax.random.split(key)
    params = dict(params)
    if input_rate > 0.0:
        params[INPUT_MASK] = dropout_mask(k_in, (h.shape[0], input_size), input_rate, dtype)
    if recurrent_rate > 0.0:
        params[RECURRENT_MASK] = dropout_mask(k_rec, h.shape, recurrent_rate, dtype)
    return params
