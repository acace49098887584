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

    Args:
        carry: the state, a pytree of ``(B, ...)`` leaves (batch on ``batch_axis``).
        reset: ``(B,)`` bool, true where the sequence starts anew.
        initial: the state to start from, shaped like ``carry``; default zeros.
        batch_axis: the batch axis of every leaf.

    Returns:
        ``carry`` with the reset rows replaced.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.training import reset_carry
        >>> h = reset_carry(jnp.ones((3, 2)), jnp.array([False, True, False]))
        >>> h[:, 0].tolist()
        [1.0, 0.0, 1.0]
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

    Args:
        carry: the final state of a chunk, a pytree of ``(B, ...)`` leaves; a layer's
            ``h_n`` or ``(h_n, c_n)`` with ``batch_axis=1``.
        reset: ``(B,)`` bool, true where a new sequence starts with the next chunk.
        batch_axis: the batch axis of every leaf.

    Returns:
        The initial state of the next chunk: no gradient flows back through it.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.training import carry_over
        >>> h_n = jnp.ones((2, 3, 4))  # (num_layers * D, B, H)
        >>> h_0 = carry_over(h_n, jnp.array([True, False, False]), batch_axis=1)
        >>> h_0[:, :, 0].tolist()
        [[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
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

    Args:
        cell: a cell ``cell(params, carry, x) -> (carry, y)`` (:mod:`jaxrnn.cells`).
        params: the cell's parameters.
        xs: the inputs ``(T, B, I)``, time-major.
        carry: the initial state, e.g. ``(B, H)``.
        chunk_size: ``K``, the truncation length; it divides ``T``.
        resets: ``(T, B)`` bool, or ``None`` for no resets.
        unroll: steps per iteration of the inner loop (``jax.lax.scan``'s ``unroll``).

    Returns:
        ``(carry, ys)``: the final state and the outputs ``(T, B, H)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrnn.cells import gru_cell
        >>> from jaxrnn.params import Layout, init_params, layer_params
        >>> from jaxrnn.training import tbptt_scan
        >>> params = layer_params(init_params(jax.random.key(0), Layout("gru", 3, 8)), 0, False)
        >>> carry, ys = tbptt_scan(
        ...     gru_cell, params, jnp.ones((60, 4, 3)), jnp.zeros((4, 8)), chunk_size=20
        ... )
        >>> carry.shape, ys.shape
        ((4, 8), (60, 4, 8))
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

    Args:
        data: the stream ``(N, ...)``, e.g. token ids ``(N,)``.
        batch_size: ``B``, the number of parallel streams.
        chunk_size: the steps per chunk.

    Returns:
        ``(inputs, targets)``, NumPy arrays ``(n, B, chunk_size, ...)``.

    Examples:
        >>> import numpy as np
        >>> from jaxrnn.training import stream_batches
        >>> inputs, targets = stream_batches(np.arange(100), batch_size=2, chunk_size=5)
        >>> inputs.shape, inputs[0, 0].tolist(), targets[0, 0].tolist()
        ((9, 2, 5), [0, 1, 2, 3, 4], [1, 2, 3, 4, 5])
        >>> inputs[1, 0].tolist()  # chunk 1 continues chunk 0 in every row
        [5, 6, 7, 8, 9]
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
