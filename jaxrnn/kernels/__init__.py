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

``"auto"`` chooses the kernel and ``unroll`` together (:func:`choose`): from a wisdom table
measured on this machine (:mod:`.wisdom`, ``python -m jaxrnn.tune``) for the call's exact
signature, else for the nearest measured one, else by the built-in rules of the platform
(:mod:`.rules`). :func:`explain` says which and why; so does the ``jaxrnn.kernels`` logger at
DEBUG level.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrnn import families
from jaxrnn.families.base import Array, Carry, Family, Params
from jaxrnn.kernels import chunkwise, cudnn, fused, onednn, parallel, rules, scan, wisdom
from jaxrnn.kernels.modes import forward_mode, reverse_mode
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
    # for the measured choice (wisdom): the rest of the call's static signature
    steps: int = 0
    features: tuple[int, ...] = ()  # x's feature shape, (I,) (ConvLSTM: (Hs, Ws, C))
    layers: int = 1
    directions: int = 1
    training: bool = False  # differentiated in reverse mode (a gradient step)


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
    unrolled: bool = True  # whether run() uses ``unroll`` (tuning times 1 only if not)
    # Runs a whole stack in one call (``(family, layers, xs, carries) -> (ys, finals)``), as
    # cuDNN does; ``functional.stack`` takes it when no dropout or remat needs layer control.
    run_stack: Callable[..., tuple[Array, list]] | None = None


def _no_recurrent_dropout(family: Family, call: Call) -> str | None:
    if call.recurrent_dropout and not family.recurrent_dropout:
        return f"the {family.name} family has no recurrence through a weight on h to drop"
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


def _sequential_supports(family: Family, call: Call) -> str | None:
    if call.forward_mode:
        return (
            "its hand-written backward is reverse-mode only (jax.jvp, jax.jacfwd and "
            "jax.hessian need backend='parallel' or 'scan')"
        )
    return _linear_supports(family, call)


_KERNELS: dict[str, Kernel] = {
    "fused": Kernel("fused", _fused_supports, fused.run),
    # O(log T) depth: the win on accelerators; on CPU the sequential loop is faster at every
    # T measured (BENCHMARKS.md), so "auto" takes it only off the CPU.
    "parallel": Kernel(
        "parallel",
        _linear_supports,
        parallel.run_associative,
        platforms=("gpu", "tpu"),
        unrolled=False,
    ),
    "sequential": Kernel(
        "sequential", _sequential_supports, parallel.run_sequential, unrolled=False
    ),
    "scan": Kernel("scan", _scan_supports, scan.run),
    # the mLSTM's matrix memory, chunk by chunk or as one (T, T) quadratic form
    "chunkwise": Kernel(
        "chunkwise",
        _scan_supports,
        chunkwise.run_chunkwise,
        families=chunkwise.FAMILIES,
        unrolled=False,
    ),
    "quadratic": Kernel(
        "quadratic",
        _scan_supports,
        chunkwise.run_quadratic,
        families=chunkwise.FAMILIES,
        unrolled=False,
    ),
}
_BUILT_IN = tuple(_KERNELS)
if onednn.load() is not None:  # the optional native plugin, found at import
    _KERNELS["onednn"] = Kernel(
        "onednn",
        onednn.supports,
        onednn.run,
        families=onednn.FAMILIES,
        prefer=onednn.prefer,
        unrolled=False,
    )
if cudnn.load() is not None:  # the optional cuDNN plugin; it runs on a CUDA GPU only
    _KERNELS["cudnn"] = Kernel(
        "cudnn", cudnn.supports, cudnn.run, families=cudnn.FAMILIES, platforms=("gpu",),
        prefer=cudnn.prefer, unrolled=False, run_stack=cudnn.run_stack,
    )  # fmt: skip


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


class Choice(NamedTuple):
    """What runs a call: the kernel, the ``unroll`` it gets, and why (for :func:`explain`)."""

    kernel: Kernel
    unroll: int | bool
    why: str


_log = logging.getLogger(__name__)


def check_unroll(unroll: Any) -> int | bool | str:
    """``unroll`` as given if it is ``"auto"``, a bool or a positive int; a clear error else."""
    if isinstance(unroll, str):
        if unroll != "auto":
            raise ValueError(f"unroll must be 'auto', a positive int or a bool, got {unroll!r}")
        return unroll
    if not isinstance(unroll, int):
        raise TypeError(
            f"unroll must be 'auto', a positive int or a bool, got {type(unroll).__name__}"
        )
    if not isinstance(unroll, bool) and unroll < 1:
        raise ValueError(f"unroll must be a positive int, got {unroll}")
    return unroll


def _named(family: Family, call: Call, backend: str) -> Kernel:
    """The kernel ``backend`` names, or the reason it cannot run ``call``."""
    if backend == "onednn" and backend not in _KERNELS:
        raise ValueError(f"backend='onednn' needs the jaxrnn_onednn plugin: {onednn.INSTALL}")
    if backend == "cudnn" and backend not in _KERNELS:
        raise ValueError(
            f"backend='cudnn' needs the jaxrnn_cudnn plugin and a CUDA GPU: {cudnn.INSTALL}"
        )
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
    if backend == "cudnn":  # named: a cuDNN failure raises instead of falling back
        return _KERNELS[backend]._replace(run=cudnn.run_strict)
    return _KERNELS[backend]


def _by_rules(family: Family, call: Call, platform: str) -> Kernel:
    """The first kernel the family offers that this platform's rules let "auto" take."""
    reasons = []
    for name in offered(family):
        kernel = _KERNELS[name]
        if kernel.platforms is not None and platform not in kernel.platforms:
            continue
        if kernel.prefer is not None and not kernel.prefer(family, call):
            continue
        reason = kernel.supports(family, call)
        if reason is None:
            return kernel
        reasons.append(f"{name}: {reason}")
    raise ValueError(f"no kernel of the {family.name} family runs this call ({reasons})")


def candidates(family: Family, call: Call, platform: str | None = None) -> list[tuple[str, int]]:
    """Every (kernel, unroll) worth timing for ``call``: each registered kernel that runs it,
    with each of the platform's unroll values if the kernel uses ``unroll``, else 1."""
    platform = jax.default_backend() if platform is None else platform
    out = []
    for name in offered(family):
        kernel = _KERNELS[name]
        if kernel.supports(family, call) is None:
            unrolls = rules.candidate_unrolls(platform) if kernel.unrolled else (1,)
            out.extend((name, u) for u in unrolls)
    return out


def choose(
    family: Family, call: Call, backend: str = "auto", unroll: int | bool | str = "auto"
) -> Choice:
    """The kernel and ``unroll`` that run ``call``.

    A named ``backend`` and an explicit ``unroll`` always win. What ``"auto"`` leaves open
    comes from, in order: the wisdom entry of ``call``'s exact signature on this machine, the
    nearest measured one (:mod:`.wisdom`), the platform's built-in rules (:mod:`.rules`).
    Among a table entry's candidates it takes the fastest that can run the call
    (:func:`wisdom.pick`), so with a given table the choice is deterministic.
    """
    choice = _choose(family, call, backend, unroll)
    _log.debug("%s: %s with unroll %s (%s)", family.name, choice.kernel.name, choice.unroll,
               choice.why)  # fmt: skip
    return choice


def _choose(family: Family, call: Call, backend: str, unroll: int | bool | str) -> Choice:
    checked = check_unroll(unroll)
    fixed = None if isinstance(checked, str) else checked  # None: "auto"
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}")
    named = None if backend == "auto" else _named(family, call, backend)
    if named is not None and fixed is not None:
        return Choice(named, fixed, f"backend={backend!r} and unroll={unroll!r} as given")
    platform = jax.default_backend()
    for entry, how in wisdom.lookup(family.name, call, platform):
        times = {}
        for name, seconds in entry["times"].items():
            kernel_name, u = wisdom.parse_candidate(name)
            kernel = _KERNELS.get(kernel_name)
            if kernel is None or kernel_name not in offered(family):
                continue  # no longer installed, or another family's
            if named is not None and kernel is not named:
                continue
            if fixed is not None and kernel.unrolled and u != fixed:
                continue
            if kernel.supports(family, call) is None:
                times[kernel_name, u] = seconds
        if times:
            kernel_name, u = wisdom.pick(times)
            shape = "B{batch} T{steps} H{hidden} L{layers} D{directions}".format(**entry)
            return Choice(
                _KERNELS[kernel_name],
                u if fixed is None else fixed,
                f"wisdom, {how} entry ({shape}): {kernel_name} with unroll {u} took "
                f"{times[kernel_name, u] * 1e3:.3g} ms, fastest of {len(times)} that run it",
            )
    if named is None:
        return by_rules(family, call, unroll)
    chosen = rules.unroll(platform)
    return Choice(
        named, chosen, f"backend={backend!r} as given, unroll {chosen} by the built-in "
        f"{platform} rules; no wisdom entry",
    )  # fmt: skip


def by_rules(family: Family, call: Call, unroll: int | bool | str = "auto") -> Choice:
    """What ``"auto"`` runs ``call`` on by the platform's built-in rules alone (no table)."""
    platform = jax.default_backend()
    checked = check_unroll(unroll)
    kernel = _by_rules(family, call, platform)
    chosen = rules.unroll(platform) if isinstance(checked, str) else checked
    return Choice(
        kernel, chosen, f"built-in {platform} rules ({kernel.name}, unroll {chosen}); no "
        "wisdom entry",
    )  # fmt: skip


def select(family: Family, call: Call, backend: str = "auto") -> Kernel:
    """The kernel that runs ``call``: the one named, or the one ``"auto"`` chooses."""
    return choose(family, call, backend).kernel


def explain(
    family: Family | str, call: Call, backend: str = "auto", unroll: int | bool | str = "auto"
) -> str:
    """Which kernel and ``unroll`` run ``call``, and why: a table entry, a rule, or as given.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn import kernels
        >>> call = kernels.Call(dtype=jnp.float32, batch=8, hidden=64, steps=100, features=(8,))
        >>> kernels.explain("gru", call, backend="scan", unroll=2)
        "scan with unroll 2: backend='scan' and unroll=2 as given"
    """
    choice = choose(families.get(family), call, backend, unroll)
    return f"{choice.kernel.name} with unroll {choice.unroll}: {choice.why}"


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
    "Choice",
    "Kernel",
    "by_rules",
    "candidates",
    "check_unroll",
    "choose",
    "explain",
    "forward_mode",
    "names",
    "offered",
    "register",
    "remat_chunk",
    "reverse_mode",
    "run",
    "select",
    "unregister",
]

del jnp
