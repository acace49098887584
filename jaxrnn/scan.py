"""The time loop: one ``jax.lax.scan`` of a cell over a sequence, with lengths and direction.

Built-in cells (:mod:`jaxrnn.cells`) run through :mod:`jaxrnn.fused`, the same function with a
hand-written backward pass; any other cell runs through the generic loop here. ``remat``
checkpoints the loop in chunks so a training step keeps only chunk-border carries.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from jaxrnn import fused as fused_loops
from jaxrnn.cells import Array, Carry, Cell, Params


def _where_valid(valid: Array, new, old):
    """Per-sequence select on a pytree whose leaves are ``(B, ...)``."""

    def select(n, o):
        return jnp.where(valid.reshape(valid.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(select, new, old)


def _generic(cell, params, xs, carry, lengths, steps, reverse, unroll):
    if lengths is None:

        def step(c, x):
            return cell(params, c, x)

        return jax.lax.scan(step, carry, xs, reverse=reverse, unroll=unroll)

    def masked_step(c, inputs):
        x, t = inputs
        new_c, y = cell(params, c, x)
        valid = t < lengths
        y = jnp.where(valid.reshape(valid.shape + (1,) * (y.ndim - 1)), y, jnp.zeros_like(y))
        return _where_valid(valid, new_c, c), y

    return jax.lax.scan(masked_step, carry, (xs, steps), reverse=reverse, unroll=unroll)


def remat_chunk(remat: int | bool | None, steps: int) -> int | None:
    """The chunk length ``remat`` asks for over ``steps`` time steps (``True``: ``ceil(√T)``)."""
    if remat is None or remat is False:
        return None
    if remat is True:
        return max(1, math.ceil(math.sqrt(steps)))
    if not isinstance(remat, int) or remat < 1:
        raise ValueError(
            f"remat must be None, a bool or a positive int chunk length, got {remat!r}"
        )
    return remat


def _checkpointed(run, params, xs, carry, chunk: int, reverse: bool):
    """``run`` over ``xs`` in chunks of ``chunk`` steps, each under ``jax.checkpoint``.

    Only the carry at each chunk border is kept for the backward pass; a chunk's own
    activations are recomputed when its gradient is needed. A last, shorter chunk takes the
    ``T mod chunk`` remaining steps.
    """
    t = xs.shape[0]
    steps = jnp.arange(t, dtype=jnp.int32)
    segment = jax.checkpoint(run, prevent_cse=False)
    n, rest = divmod(t, chunk)
    head = n * chunk

    def run_head(c):
        def body(c, inputs):
            return segment(params, *inputs[:1], c, inputs[1])

        split = (
            xs[:head].reshape(n, chunk, *xs.shape[1:]),
            steps[:head].reshape(n, chunk),
        )
        c, ys = jax.lax.scan(body, c, split, reverse=reverse)
        return c, ys.reshape(head, *ys.shape[2:])

    def run_tail(c):
        return segment(params, xs[head:], c, steps[head:])

    if not rest:
        return run_head(carry)
    if reverse:
        carry, tail = run_tail(carry)
        carry, ys = run_head(carry)
    else:
        carry, ys = run_head(carry)
        carry, tail = run_tail(carry)
    return carry, jnp.concatenate([ys, tail], axis=0)


def check_matmul_dtype(matmul_dtype) -> jnp.dtype | None:
    """``matmul_dtype`` as a floating-point ``jnp.dtype`` (or ``None``); a clear error otherwise."""
    if matmul_dtype is None:
        return None
    try:
        dtype = jnp.dtype(matmul_dtype)
    except TypeError as e:
        raise TypeError(
            f"matmul_dtype must be a dtype such as jnp.bfloat16, got {matmul_dtype!r}"
        ) from e
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"matmul_dtype must be a floating-point dtype, got {dtype}")
    return dtype


# Jitted on the cell's identity: called eagerly, the per-call closure below would otherwise be
# retraced and recompiled by XLA on every call (~0.1-0.5 s each); under an outer jit it inlines.
@functools.partial(
    jax.jit,
    static_argnums=0,
    static_argnames=("reverse", "unroll", "remat", "fused", "matmul_dtype"),
)
def scan(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry,
    *,
    lengths: Array | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    remat: int | bool | None = None,
    fused: bool = True,
    matmul_dtype: jnp.dtype | None = None,
) -> tuple[Carry, Array]:
    """Run ``cell`` over time: ``xs (T, B, I) -> (final carry, ys (T, B, H_out))``.

    With ``lengths`` (``(B,)`` ints, each in ``[1, T]``) this is PyTorch's packed-sequence
    behaviour: the carry of sequence ``b`` is frozen from step ``lengths[b]`` on, so the final
    carry is the one after its last valid step, and outputs at padded steps are zero. With
    ``reverse=True`` the loop runs from ``T - 1`` down to ``0``; the padded tail is visited
    first with the carry held at its initial value, so each sequence's reverse pass starts
    from its own last valid step.

    ``remat`` (a chunk length, or ``True`` for ``ceil(√T)``) checkpoints the loop in chunks:
    same results and gradients, activation memory ``O(T / chunk + chunk)`` steps instead of
    ``O(T)``, for one more forward pass in the backward. With ``fused`` (default) a built-in
    cell runs through :func:`jaxrnn.fused.scan`; ``fused=False`` forces the generic loop.

    ``matmul_dtype`` (e.g. ``jnp.bfloat16``; built-in cells on the fused path only) runs every
    matmul of the loop and of its backward pass on operands cast to that dtype, accumulating
    in the input's dtype; gates, carry and outputs stay in it. Mixed precision: faster where
    the hardware has fast bf16 matmuls, at bf16's ~3 significant digits in each product.
    """
    mode = fused_loops.mode_of(cell) if fused else None
    matmul_dtype = check_matmul_dtype(matmul_dtype)
    if matmul_dtype is not None and mode is None:
        raise ValueError(
            "matmul_dtype needs a built-in cell on the fused path (jaxrnn.cells, fused=True); "
            f"got cell {getattr(cell, '__name__', cell)!r} with fused={fused}"
        )

    def run(params, xs, carry, steps):
        if mode is not None:
            return fused_loops.scan(
                mode, params, xs, carry, lengths=lengths, steps=steps, reverse=reverse,
                unroll=unroll, matmul_dtype=matmul_dtype,
            )  # fmt: skip
        return _generic(cell, params, xs, carry, lengths, steps, reverse, unroll)

    chunk = remat_chunk(remat, xs.shape[0])
    if chunk is None or chunk >= xs.shape[0]:
        return run(params, xs, carry, jnp.arange(xs.shape[0], dtype=jnp.int32))
    return _checkpointed(run, params, xs, carry, chunk, reverse)
