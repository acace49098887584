"""Variational (time-shared) dropout for recurrent layers (Gal & Ghahramani, 2016).

Ordinary dropout draws a fresh mask at every time step, which destroys the recurrent state
it is meant to regularize. Variational dropout draws ONE mask per sequence and reuses it at
every step: on the layer's input ``x_t`` and on the state ``h_{t-1}`` where it enters the
recurrent weights ``W_hh``.

The masks travel in the cell's parameter mapping (``"input_mask"``, ``"recurrent_mask"``,
each ``(B, F)``), so the wrapped cell is one fixed function per cell and the masks are
ordinary traced arrays.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxrnn import cells
from jaxrnn.cells import Array, Carry, Cell, Params

INPUT_MASK = "input_mask"
RECURRENT_MASK = "recurrent_mask"


def check_rate(name: str, rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {rate}")


def dropout_mask(key: Array, shape: tuple[int, ...], rate: float, dtype=jnp.float32) -> Array:
    """A dropout mask of ``shape``: ``0`` with probability ``rate``, else ``1 / (1 - rate)``."""
    check_rate("rate", rate)
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return jnp.where(keep, jnp.asarray(1.0 / (1.0 - rate), dtype), jnp.zeros((), dtype))


def hidden_state(carry: Carry) -> Array:
    """The part of a carry that feeds ``W_hh``: the carry, or ``h`` of an LSTM's ``(h, c)``."""
    return carry[0] if isinstance(carry, tuple | list) else carry


def _gru_cell(params: Params, carry: Array, x: Array, mask: Array) -> tuple[Array, Array]:
    # The mask drops h where it enters W_hh only; the update h' = n + z (h - n) keeps the
    # undropped h, as in Gal & Ghahramani's GRU and Keras's recurrent_dropout.
    gi = cells.linear(x, params["weight_ih"], params.get("bias_ih"))
    gh = cells.linear(carry * mask, params["weight_hh"], params.get("bias_hh"))
    h = cells.gru_update(gi, gh, carry)
    return h, h


@functools.cache
def variational(cell: Cell) -> Cell:
    """``cell`` with time-shared dropout masks read from its params.

    ``params["input_mask"]`` (``(B, I)``) multiplies every ``x_t``;
    ``params["recurrent_mask"]`` (``(B, H)``) multiplies ``h_{t-1}`` where it enters ``W_hh``.
    Either may be absent. Works for any cell whose carry is ``h`` or ``(h, ...)`` and in which
    ``h_{t-1}`` is used only through ``W_hh`` (Elman, LSTM); the GRU, whose update also reads
    ``h_{t-1}``, is handled exactly.
    """

    def dropped(params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
        params = dict(params)
        input_mask = params.pop(INPUT_MASK, None)
        recurrent_mask = params.pop(RECURRENT_MASK, None)
        if input_mask is not None:
            x = x * input_mask
        if recurrent_mask is None:
            return cell(params, carry, x)
        if cell is cells.gru_cell:
            return _gru_cell(params, carry, x, recurrent_mask)
        if isinstance(carry, tuple | list):
            return cell(params, (carry[0] * recurrent_mask, *carry[1:]), x)
        return cell(params, carry * recurrent_mask, x)

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
    dtype=jnp.float32,
) -> dict[str, Array]:
    """``params`` plus freshly drawn masks for :func:`variational` (none at rate 0)."""
    check_rate("input_dropout", input_rate)
    check_rate("recurrent_dropout", recurrent_rate)
    h = hidden_state(carry)
    k_in, k_rec = jax.random.split(key)
    params = dict(params)
    if input_rate > 0.0:
        params[INPUT_MASK] = dropout_mask(k_in, (h.shape[0], input_size), input_rate, dtype)
    if recurrent_rate > 0.0:
        params[RECURRENT_MASK] = dropout_mask(k_rec, h.shape, recurrent_rate, dtype)
    return params
