"""The generic kernel: the family's reference step under ``jax.lax.scan``, differentiated by
autodiff. It runs any family and any user cell, in every mode (``jvp``, ``vmap``, ``grad``)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.families.base import Array, Carry, Family, Params


def where_rows(rows: Array, new: Any, old: Any) -> Any:
    """Per-sequence select on a pytree whose leaves are ``(B, ...)``: ``rows (B,)`` bool."""

    def select(n, o):
        return jnp.where(rows.reshape(rows.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(select, new, old)


def run(
    family: Family,
    params: Params,
    xs: Array,
    carry: Carry,
    *,
    init: Carry = None,
    valid: Array | None = None,
    resets: Array | None = None,
    mask: Array | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    matmul_dtype: Any = None,
) -> tuple[Carry, Array]:
    """``xs (T, B, ...) -> (final carry, ys (T, B, ...))``; see :func:`jaxrnn.kernels.run`.

    A reset step starts from ``init`` (or, for a family with a ``start_step``, is that
    family's segment start); a padded step (``valid`` false) keeps the carry it was handed
    (before any reset) and outputs zeros.
    """
    del matmul_dtype  # refused by the kernel's supports()
    start_step = family.start_step

    def step(c, inputs):
        x, v, r = inputs
        if r is not None and start_step is not None:
            new_c, y = start_step(params, c, x, r)
        else:
            c_in = c if r is None else where_rows(r, init, c)
            new_c, y = family.step_with_mask(params, c_in, x, mask)
        if v is not None:
            y = where_rows(v, y, jnp.zeros_like(y))
            new_c = where_rows(v, new_c, c)
        return new_c, y

    return jax.lax.scan(step, carry, (xs, valid, resets), reverse=reverse, unroll=unroll)
