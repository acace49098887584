"""Which autodiff mode is tracing a call, read off its arguments' tracers.

Kernels with a hand-written backward (``jax.custom_vjp``) run only under reverse mode, and
``"auto"`` times a training step apart from inference; both ask these questions at trace time,
outside any ``jit`` of their own (inside one the tracers are abstract).
"""

from __future__ import annotations

from typing import Any

import jax
from jax._src.core import Tracer as _Tracer  # pyright: ignore[reportPrivateImportUsage]
from jax._src.interpreters import ad as _ad


def reverse_mode(*trees: Any) -> bool:
    """Whether any leaf is being differentiated in reverse mode (``jax.grad``, ``vjp``): a
    training step. Seen only when the gradient is taken around the traced call (``jit(grad(
    f))``); ``grad(jit(f))`` traces ``f`` before differentiating it and reads as inference."""
    for leaf in jax.tree.leaves(trees):
        while isinstance(leaf, _Tracer):
            if isinstance(leaf, _ad.LinearizeTracer):
                return True
            leaf = getattr(leaf, "primal", None)
    return False


def forward_mode(*trees: Any) -> bool:
    """Whether any leaf is being differentiated in forward mode (``jax.jvp``, ``jacfwd``,
    the outer half of ``hessian``), seen through reverse-mode tracers wrapped around it."""
    for leaf in jax.tree.leaves(trees):
        while isinstance(leaf, _Tracer):
            if isinstance(leaf, _ad.JVPTracer):
                return True
            leaf = getattr(leaf, "primal", None)
    return False
