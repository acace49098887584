"""The time loop for one cell: ``jax.lax.scan`` with lengths, resets, direction and remat.

:func:`scan` runs any cell ``cell(params, carry, x) -> (carry, y)`` over a sequence on the
generic kernel (:mod:`jaxrnn.kernels.scan`); the layers of :mod:`jaxrnn.functional` choose
their kernel per call.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxrnn import families, kernels
from jaxrnn.families.base import Array, Carry, Cell, Params
from jaxrnn.kernels import remat_chunk


def scan(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    remat: int | bool | None = None,
) -> tuple[Carry, Array]:
    """Run ``cell`` over time: ``xs (T, B, I) -> (final carry, ys (T, B, H_out))``.

    With ``lengths`` (``(B,)`` ints, each in ``[1, T]``) this is PyTorch's packed-sequence
    behaviour: the carry of sequence ``b`` is frozen from step ``lengths[b]`` on, so the final
    carry is the one after its last valid step, and outputs at padded steps are zero. With
    ``reverse=True`` the loop runs from ``T - 1`` down to ``0``; the padded tail is visited
    first with the carry held at its initial value, so each sequence's reverse pass starts
    from its own last valid step. ``resets`` (``(T, B)`` bool, in the loop's order) restarts
    the carry from ``carry`` before each step where true. ``remat`` (a chunk length, or
    ``True`` for ``ceil(√T)``) checkpoints the loop in chunks: same results, activation
    memory ``O(T / chunk + chunk)`` steps.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.scan import scan
        >>> cell = lambda p, h, x: (h + x, h + x)  # a running sum
        >>> lengths = jnp.array([4, 2])
        >>> h, ys = scan(cell, {}, jnp.ones((4, 2, 1)), jnp.zeros((2, 1)), lengths=lengths)
        >>> h[:, 0].tolist(), ys[:, 1, 0].tolist()
        ([4.0, 2.0], [1.0, 2.0, 0.0, 0.0])
    """
    family = families.custom(cell)
    valid = None
    if lengths is not None:
        valid = jnp.arange(xs.shape[0], dtype=jnp.int32)[:, None] < lengths[None, :]
    return kernels.run(
        kernels.select(family, kernels.Call(), "scan"), family, params, xs, carry,
        init=carry if resets is not None else None, valid=valid, resets=resets,
        reverse=reverse, unroll=unroll, remat=remat,
    )  # fmt: skip


__all__ = ["remat_chunk", "scan"]
