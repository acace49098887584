"""Truncated backpropagation through time over long streams.

A long sequence is cut into chunks of ``K`` steps. Each chunk starts from the previous
chunk's final state, passed through ``jax.lax.stop_gradient``: the forward pass is the same
as one pass over the whole sequence, while gradients (and the memory they need) stop at
chunk borders. A per-sequence reset mask starts a sequence afresh from a zero state (a new
document begins in that row of the batch).

Two ways to use it:

* across training steps (stateful streams): ``carry = carry_over(carry, reset)`` before each
  step, the step's loss returning the new carry in its ``aux``; :func:`stream_batches` cuts a
  token stream into such consecutive chunks;
* inside one jitted call: :func:`tbptt_scan` runs a cell over ``(T, B, I)`` chunk by chunk.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells import Array, Carry, Cell, Params

PyTree = Any


def _check_reset(reset, batch: int, name: str = "reset") -> Array:
    reset = jnp.asarray(reset)
    if reset.shape != (batch,):
        raise ValueError(f"{name} must have shape (B,) = ({batch},), got {reset.shape}")
    if reset.dtype != jnp.bool_:
        raise TypeError(f"{name} must be a bool array, got dtype {reset.dtype}")
    return reset


def reset_carry(
    carry: PyTree, reset: Array, initial: PyTree | None = None, *, batch_axis: int = 0
) -> PyTree:
    """Where ``reset[b]`` is True, replace sequence ``b``'s state by ``initial`` (zeros).

    ``carry`` is any pytree whose leaves have the batch on ``batch_axis``: ``0`` for a cell
    carry ``(B, H)``, ``1`` for a layer's ``h_n`` ``(num_layers * D, B, H)``.
    """
    leaves = jax.tree.leaves(carry)
    if not leaves:
        return carry
    reset = _check_reset(reset, leaves[0].shape[batch_axis])
    if initial is None:
        initial = jax.tree.map(jnp.zeros_like, carry)

    def select(c, i):
        shape = [1] * c.ndim
        shape[batch_axis] = reset.shape[0]
        return jnp.where(reset.reshape(shape), i, c)

    return jax.tree.map(select, carry, initial)


def carry_over(carry: PyTree, reset: Array | None = None, *, batch_axis: int = 0) -> PyTree:
    """The state one chunk hands the next: ``stop_gradient(carry)``, zeroed where ``reset``.

    ``reset`` (``(B,)`` bool) marks sequences that start anew with this chunk.
    """
    carry = jax.lax.stop_gradient(carry)
    return carry if reset is None else reset_carry(carry, reset, batch_axis=batch_axis)


def tbptt_scan(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry,
    *,
    chunk_size: int,
    resets: Array | None = None,
    unroll: int | bool = 1,
) -> tuple[Carry, Array]:
    """Run ``cell`` over ``xs (T, B, I)`` in chunks of ``chunk_size`` steps -> ``(carry, ys)``.

    Values equal :func:`jaxrnn.scan.scan` over the whole sequence; the carry crosses each
    chunk border through ``stop_gradient``, so a loss on one chunk back-propagates into that
    chunk only (and into ``params``). ``resets`` (``(T, B)`` bool) resets sequence ``b`` to a
    zero state before step ``t`` where ``resets[t, b]`` -- a sequence boundary mid-stream.
    ``T`` must be a multiple of ``chunk_size``.
    """
    if xs.ndim < 2:
        raise ValueError(f"xs must be (T, B, ...), got shape {xs.shape}")
    steps, batch = xs.shape[:2]
    if not isinstance(chunk_size, int) or chunk_size < 1 or steps % chunk_size:
        raise ValueError(
            f"chunk_size must be a positive int dividing T = {steps}, got {chunk_size!r}"
        )
    if resets is None:
        resets = jnp.zeros((steps, batch), bool)
    resets = jnp.asarray(resets)
    if resets.shape != (steps, batch) or resets.dtype != jnp.bool_:
        raise ValueError(
            f"resets must be a bool array of shape (T, B) = ({steps}, {batch}), got "
            f"{resets.dtype} {resets.shape}"
        )
    zeros = jax.tree.map(jnp.zeros_like, carry)

    def step(c, inputs):
        x, reset = inputs
        return cell(params, reset_carry(c, reset, zeros), x)

    def chunk(c, inputs):
        return jax.lax.scan(step, jax.lax.stop_gradient(c), inputs, unroll=unroll)

    n = steps // chunk_size
    split = (xs.reshape(n, chunk_size, *xs.shape[1:]), resets.reshape(n, chunk_size, batch))
    carry, ys = jax.lax.scan(chunk, carry, split)
    return carry, ys.reshape(steps, *ys.shape[2:])


def stream_batches(data, batch_size: int, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut one long stream ``data (N, ...)`` into ``batch_size`` parallel streams of chunks.

    Returns ``inputs`` and ``targets`` (the next element), each ``(n, B, chunk_size, ...)``.
    Row ``b`` of chunk ``i + 1`` continues row ``b`` of chunk ``i``, so a model carries its
    state across chunks (:func:`carry_over`). The tail that does not fill a chunk is dropped.
    """
    data = np.asarray(data)
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(
            f"batch_size and chunk_size must be >= 1, got {batch_size} and {chunk_size}"
        )
    per_row = (len(data) - 1) // batch_size  # -1: every input needs a next element
    n = per_row // chunk_size
    if n == 0:
        raise ValueError(
            f"a stream of {len(data)} elements is too short for batch_size={batch_size} "
            f"and chunk_size={chunk_size} (needs at least {batch_size * chunk_size + 1})"
        )
    used = n * chunk_size
    rows = np.arange(batch_size)[:, None] * per_row + np.arange(used + 1)[None]  # (B, used+1)
    streams = data[rows]

    def chunks(a):
        a = a.reshape(batch_size, n, chunk_size, *a.shape[2:])
        return np.swapaxes(a, 0, 1)

    return chunks(streams[:, :-1]), chunks(streams[:, 1:])
