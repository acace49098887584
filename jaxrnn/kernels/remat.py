"""Rematerialisation for any kernel: the loop in chunks, each under ``jax.checkpoint``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.families.base import Array, Carry


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


def checkpointed(
    run: Callable[..., tuple[Carry, Array]],
    xs: Array,
    carry: Carry,
    *per_step: Any,
    chunk: int,
    reverse: bool,
) -> tuple[Carry, Array]:
    """``run(xs, carry, *per_step)`` over ``xs`` in chunks of ``chunk`` steps, each
    checkpointed.

    Only the carry at each chunk border is kept for the backward pass; a chunk's activations
    are recomputed when its gradient is needed: activation memory ``O(T / chunk + chunk)``
    steps instead of ``O(T)``. ``per_step`` are ``(T, ...)`` arrays (or ``None``) cut along
    with ``xs``. A last, shorter chunk takes the ``T mod chunk`` remaining steps.
    """
    t = xs.shape[0]
    segment = jax.checkpoint(run, prevent_cse=False)
    n, rest = divmod(t, chunk)
    head = n * chunk

    def cut(a, lo, hi):
        return None if a is None else a[lo:hi]

    def run_head(c):
        def split(a):
            return None if a is None else a[:head].reshape(n, chunk, *a.shape[1:])

        def body(c, inputs):
            return segment(inputs[0], c, *inputs[1:])

        c, ys = jax.lax.scan(body, c, (split(xs), *map(split, per_step)), reverse=reverse)
        return c, ys.reshape(head, *ys.shape[2:])

    def run_tail(c):
        return segment(xs[head:], c, *(cut(a, head, t) for a in per_step))

    if not rest:
        return run_head(carry)
    if reverse:
        carry, tail = run_tail(carry)
        carry, ys = run_head(carry)
    else:
        carry, ys = run_head(carry)
        carry, tail = run_tail(carry)
    return carry, jnp.concatenate([ys, tail], axis=0)
