"""Kernels: the loops that run a family's recurrence over time, chosen by what a call needs.

A :class:`Kernel` says whether it can run a call (``supports(family, call)`` returns ``None``
or the reason it cannot) and runs one layer-direction. ``backend="auto"`` takes the first
kernel a family offers (fastest first) that supports the call; naming a kernel that cannot run
it is a ``ValueError`` with the reason. Built in: ``"scan"`` (:mod:`.scan`, ``lax.scan`` of
the reference step + autodiff, runs any family), ``"fused"`` (:mod:`.fused`, hand-written
backward), and for linear recurrences ``"parallel"`` (``lax.associative_scan``, taken by
``"auto"`` off the CPU) and ``"sequential"`` (one ``lax.scan`` over precomputed
coefficients; :mod:`.parallel`). A kernel from a plugin registers itself with
:func:`register` and lists the families it runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax._src.core import Tracer as _Tracer  # pyright: ignore[reportPrivateImportUsage]
from jax._src.interpreters import ad as _ad

from jaxrnn.families.base import Array, Carry, Family, Params
from jaxrnn.kernels import chunkwise, fused, onednn, parallel, scan
from jaxrnn.kernels.remat import checkpointed, remat_chunk


class Call(NamedTuple):
    """What one layer call asks of a kernel (static facts, no arrays)."""

    lengths: bool = False
    resets: bool = False
    recurrent_dropout: bool = False
    matmul_dtype: Any = None
    forward_mode: bool = False
    dtype: Any = None  # the input's
    batch: int = 0
    hidden: int = 0  # width of the recurrent state h


class Kernel(NamedTuple):
    """A loop over time. ``run(family, params, xs, carry, *, init, valid, resets, mask,
    reverse, unroll, matmul_dtype) -> (final carry, ys)``; ``families`` lists the families a
    plugin kernel runs (``None``: those that name it in ``Family.kernels``)."""

    name: str
    supports: Callable[[Family, Call], str | None]
    run: Callable[..., tuple[Carry, Array]]
    families: tuple[str, ...] | None = None
    platforms: tuple[str, ...] | None = None  # where "auto" takes it (None: everywhere)
    prefer: Callable[[Family, Call], bool] | None = None  # when "auto" takes it (None: always)


def _no_recurrent_dropout(family: Family, call: Call) -> str | None:
    if call.recurrent_dropout and not family.recurrent_dropout:
        return f"the {family.name} family has no recurrence through weight_hh to drop"
    return None


def _scan_supports(family: Family, call: Call) -> str | None:
    if call.matmul_dtype is not None:
        return "matmul_dtype runs on the fused kernel only"
    return _no_recurrent_dropout(family, call)


def _fused_supports(family: Family, call: Call) -> str | None:
    if family.fused is None:
        return f"the {family.name} family has no fused loop"
    if call.resets:
        return "resets run on the scan kernel"
    if call.forward_mode:
        return (
            "its hand-written backward is reverse-mode only (jax.jvp, jax.jacfwd and "
            "jax.hessian need backend='scan')"
        )
    return None


def _linear_supports(family: Family, call: Call) -> str | None:
    if family.linear is None:
        return f"the {family.name} family is not a linear recurrence"
    if call.matmul_dtype is not None:
        return "matmul_dtype runs on the fused kernel only"
    return _no_recurrent_dropout(family, call)


_KERNELS: dict[str, Kernel] = {
    "fused": Kernel("fused", _fused_supports, fused.run),
    # O(log T) depth: the win on accelerators; on CPU the sequential loop is faster at every
    # T measured (BENCHMARKS.md), so "auto" takes it only off the CPU.
    "parallel": Kernel(
        "parallel", _linear_supports, parallel.run_associative, platforms=("gpu", "tpu")
    ),
    "sequential": Kernel("sequential", _linear_supports, parallel.run_sequential),
    "scan": Kernel("scan", _scan_supports, scan.run),
    # the mLSTM's matrix memory, chunk by chunk or as one (T, T) quadratic form
    "chunkwise": Kernel(
        "chunkwise", _scan_supports, chunkwise.run_chunkwise, families=chunkwise.FAMILIES
    ),
    "quadratic": Kernel(
        "quadratic", _scan_supports, chunkwise.run_quadratic, families=chunkwise.FAMILIES
    ),
}
_BUILT_IN = tuple(_KERNELS)
if onednn.load() is not None:  # the optional native plugin, found at import
    _KERNELS["onednn"] = Kernel(
        "onednn", onednn.supports, onednn.run, families=onednn.FAMILIES, prefer=onednn.prefer
    )


def register(kernel: Kernel) -> Kernel:
    """Add a (plugin) kernel; ``kernel.families`` names the families it runs."""
    _KERNELS[kernel.name] = kernel
    return kernel


def unregister(name: str) -> None:
    """Remove a plugin kernel (the built-ins stay)."""
    if name in _BUILT_IN:
        raise ValueError(f"the built-in kernel {name!r} cannot be removed")
    _KERNELS.pop(name, None)


def names() -> list[str]:
    """Every kernel name known now."""
    return sorted(_KERNELS)


def offered(family: Family) -> list[str]:
    """The kernels that can run ``family``, in ``"auto"``'s order: plugins first."""
    plugins = [k.name for k in _KERNELS.values() if k.families and family.name in k.families]
    return plugins + [name for name in family.kernels if name in _KERNELS]


def select(family: Family, call: Call, backend: str = "auto") -> Kernel:
    """The kernel that runs ``call``: the first that supports it, or the one named."""
    if backend == "auto":
        reasons = []
        platform = jax.default_backend()
        for name in offered(family):
            kernel = _KERNELS[name]
            if kernel.platforms is not None and platform not in kernel.platforms:
                continue
            if kernel.prefer is not None and not kernel.prefer(family, call):
                continue
            reason = kernel.supports(family, call)
            if reason is None:
                return _KERNELS[name]
            reasons.append(f"{name}: {reason}")
        raise ValueError(f"no kernel of the {family.name} family runs this call ({reasons})")
    if backend == "onednn" and backend not in _KERNELS:
        raise ValueError(f"backend='onednn' needs the jaxrnn_onednn plugin: {onednn.INSTALL}")
    if backend not in _KERNELS:
        raise ValueError(f"backend must be 'auto' or one of {names()}, got {backend!r}")
    if backend not in offered(family):
        raise ValueError(
            f"the {family.name} family does not offer backend={backend!r}; it offers "
            f"{offered(family)}"
        )
    reason = _KERNELS[backend].supports(family, call)
    if reason is not None:
        raise ValueError(f"backend={backend!r} cannot run this call: {reason}")
    return _KERNELS[backend]


def forward_mode(*trees: Any) -> bool:
    """Whether any leaf is being differentiated in forward mode (``jax.jvp``, ``jacfwd``,
    the outer half of ``hessian``), seen through reverse-mode tracers wrapped around it."""
    for leaf in jax.tree.leaves(trees):
        while isinstance(leaf, _Tracer):
            if isinstance(leaf, _ad.JVPTracer):
                return True
            leaf = getattr(leaf, "primal", None)
    return False


@functools.partial(
    jax.jit, static_argnames=("kernel", "family", "reverse", "unroll", "remat", "matmul_dtype")
)
def run(
    kernel: Kernel,
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
    remat: int | bool | None = None,
    matmul_dtype: Any = None,
) -> tuple[Carry, Array]:
    """One layer-direction through ``kernel``: ``xs (T, B, ...) -> (final carry, ys)``.

    ``valid`` (``(T, B)`` bool, from ``lengths``) freezes the carry at padded steps and zeroes
    their outputs; ``resets`` (``(T, B)`` bool, in loop order) restarts the carry from
    ``init`` before a step; ``mask`` is the recurrent dropout mask. ``remat`` checkpoints the
    loop in chunks (see :func:`jaxrnn.kernels.remat.checkpointed`).
    """

    def go(xs, carry, valid, resets):
        return kernel.run(
            family, params, xs, carry, init=init, valid=valid, resets=resets, mask=mask,
            reverse=reverse, unroll=unroll, matmul_dtype=matmul_dtype,
        )  # fmt: skip

    chunk = remat_chunk(remat, xs.shape[0])
    if chunk is None or chunk >= xs.shape[0]:
        return go(xs, carry, valid, resets)
    return checkpointed(go, xs, carry, valid, resets, chunk=chunk, reverse=reverse)


__all__ = [
    "Call",
    "Kernel",
    "forward_mode",
    "names",
    "offered",
    "register",
    "remat_chunk",
    "run",
    "select",
    "unregister",
]

del jnp
