"""The linear recurrence ``h_t = a_t * h_{t-1} + b_t`` over a whole sequence, in one call.

Every family whose state update is linear in the state (minGRU, minLSTM, LRU, RG-LRU) reduces
to this elementwise recurrence once its coefficients ``a_t, b_t`` are computed from the inputs.
:func:`linear_recurrence` runs it either as ``jax.lax.associative_scan`` (``O(log T)`` depth;
Blelloch 1990, "Prefix sums and their applications"; Martin & Cundy 2018, "Parallelizing
linear recurrent neural nets over sequence length") or as a sequential ``jax.lax.scan``, with
the padding (``valid``), episode-reset (``resets``) and direction (``reverse``) semantics of
the PyTorch-family layers. Both are differentiable by autodiff.

The elements are pairs ``(a, b)`` meaning the affine map ``h -> a * h + b``; applying
``(a1, b1)`` then ``(a2, b2)`` is ``(a1, b1) ∘ (a2, b2) = (a1 * a2, a2 * b1 + b2)``, which is
associative. A padded step is the identity ``(1, 0)``; a step that restarts from ``h0`` is
the constant map ``(0, a_t * h0 + b_t)`` (the standard resettable operator).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp

from jaxrnn.families.base import Family, Params
from jaxrnn.kernels.modes import forward_mode

Array = jax.Array
Method = Literal["associative", "sequential"]
METHODS: tuple[str, ...] = ("associative", "sequential")


def combine(first: tuple[Array, Array], second: tuple[Array, Array]) -> tuple[Array, Array]:
    """Compose two affine maps, ``first`` applied before ``second``: ``(a1 a2, a2 b1 + b2)``."""
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2


def _check_mask(name: str, mask: Array | None, steps: int, batch: int) -> Array | None:
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.shape != (steps, batch):
        raise ValueError(
            f"{name} must have shape (T, B) = ({steps}, {batch}), got shape {mask.shape}"
        )
    if mask.dtype != jnp.bool_:
        raise TypeError(f"{name} must be a boolean array, got dtype {mask.dtype}")
    return mask


def _check_inputs(a: Array, b: Array, h0: Array) -> tuple[Array, Array, Array]:
    a, b, h0 = jnp.asarray(a), jnp.asarray(b), jnp.asarray(h0)
    for name, value in (("a", a), ("b", b), ("h0", h0)):
        if not jnp.issubdtype(value.dtype, jnp.inexact):
            raise TypeError(
                f"{name} must be a floating-point or complex array, got dtype {value.dtype}"
            )
    if b.ndim != 3:
        raise ValueError(f"b must have shape (T, B, N), got shape {b.shape}")
    if a.shape not in (b.shape, b.shape[-1:]):
        raise ValueError(
            f"a must have shape (T, B, N) = {b.shape} or, constant in time, (N,) = "
            f"{b.shape[-1:]}, got shape {a.shape}"
        )
    if h0.shape != b.shape[1:]:
        raise ValueError(f"h0 must have shape (B, N) = {b.shape[1:]}, got shape {h0.shape}")
    dtype = jnp.result_type(a, b, h0)
    return a.astype(dtype), b.astype(dtype), h0.astype(dtype)


def restarts(
    resets: Array,
    valid: Array | None,
    *,
    reverse: bool,
) -> Array:
    """Where the carry is replaced by the reset state before the step, in loop order.

    ``resets (T, B)`` is true where a new segment starts (forward convention). Forwards the
    carry restarts wherever ``resets`` is true. Backwards (the loop runs ``T-1 -> 0``) each
    segment is entered at its last step, so the carry restarts at every step ``t`` whose
    successor ``t+1`` starts a new segment. A reset on a padded step (``valid`` false) is
    ignored, so the state holds over padding. Returns ``(T, B)`` bool.
    """
    if reverse:
        resets = jnp.concatenate([resets[1:], jnp.zeros_like(resets[:1])], axis=0)
    return resets if valid is None else resets & valid


def elements(
    a: Array,
    b: Array,
    h0: Array,
    *,
    valid: Array | None = None,
    restart: Array | None = None,
    reset_state: Array | None = None,
    reverse: bool = False,
) -> tuple[Array, Array]:
    """The scan elements ``(a', b') (T, B, N)`` with padding, resets and ``h0`` folded in.

    Padded steps (``valid`` false) become the identity ``(1, 0)``; steps where the carry
    restarts (``restart (T, B)``, in loop order, see :func:`restarts`) become
    ``(0, a_t * reset_state + b_t)``, and the loop's
    first step (``t = 0``, or ``T - 1`` with ``reverse``) becomes ``(0, a_t * h0 + b_t)``
    unless it restarts. So the prefix composition of the elements is the state itself,
    ``h_t = b'_{0..t}``, with no separate ``h0`` term.
    """
    a, b = fold_masks(a, b, valid=valid, restart=restart, reset_state=reset_state, h0=h0)
    edge = -1 if reverse else 0
    first_b = a[edge] * h0 + b[edge]  # a restart there already made a[edge] = 0
    return a.at[edge].set(0), b.at[edge].set(first_b)


def fold_masks(
    a: Array,
    b: Array,
    *,
    valid: Array | None,
    restart: Array | None,
    reset_state: Array | None,
    h0: Array,
) -> tuple[Array, Array]:
    """``(a, b)`` with padding and restarts made part of the recurrence: a padded step is the
    identity ``(1, 0)``, a restart the constant map ``(0, a_t * reset_state + b_t)`` (``h0``
    where no ``reset_state`` is given). A constant ``(N,)`` ``a`` comes back ``(T, B, N)``."""
    if valid is not None:
        a = jnp.where(valid[..., None], a, jnp.ones_like(a))
        b = jnp.where(valid[..., None], b, jnp.zeros_like(b))
    if restart is not None:
        reset = restart[..., None]
        state = h0 if reset_state is None else reset_state
        b = jnp.where(reset, a * state + b, b)
        a = jnp.where(reset, jnp.zeros_like(a), a)
    return a, b


def _associative(a: Array, b: Array, reverse: bool) -> Array:
    return jax.lax.associative_scan(combine, (a, b), reverse=reverse, axis=0)[1]


def _loop(a: Array, b: Array, h0: Array, reverse: bool) -> Array:
    """``hs (T, B, N)`` of ``h_t = a_t h_{t-1} + b_t`` from ``h0``, one ``lax.scan`` step a
    time step. A constant ``(N,)`` ``a`` is closed over, not sliced (1.8x faster measured for
    a complex LRU state). unroll 1 (the default): at T=4096, B*N=2048 on jax 0.10's CPU loop,
    unroll 8 took the forward from 17 to 37 ms (BENCHMARKS.md, "Linear recurrences on the CPU").
    """

    def step(h, inputs):
        a_t, b_t = inputs
        h = (a if a_t is None else a_t) * h + b_t
        return h, h

    return jax.lax.scan(step, h0, (a if a.ndim == 3 else None, b), reverse=reverse)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _recurrence(a: Array, b: Array, h0: Array, reverse: bool) -> Array:
    """:func:`_loop` with its backward written out: one reverse loop and two elementwise
    products, in place of autodiff's transposed scan (which stores and re-reads a stacked
    carry per step): 63 against 82 ms for the recurrence's training step at T=4096, B*N=2048
    (BENCHMARKS.md, "Linear recurrences on the CPU")."""
    return _loop(a, b, h0, reverse)


def _recurrence_fwd(a: Array, b: Array, h0: Array, reverse: bool):
    hs = _loop(a, b, h0, reverse)
    return hs, (a, hs, h0)


def _recurrence_bwd(reverse: bool, saved, g: Array):
    """With ``λ_t = dL/dh_t`` (all paths): ``λ_t = g_t + a_{t+1} λ_{t+1}``, itself a linear
    recurrence run the other way; then ``dL/db_t = λ_t``, ``dL/da_t = λ_t h_{t-1}`` and
    ``dL/dh0 = a_0 λ_0`` (``t+1`` and ``t-1`` swap roles for ``reverse``). No conjugation
    for complex states: JAX's cotangents are transposes, not adjoints."""
    a, hs, h0 = saved
    first = -1 if reverse else 0
    if a.ndim == 1:
        next_a = a
    elif reverse:
        next_a = jnp.concatenate([a[-1:], a[:-1]], axis=0)  # a_{t-1} (entry 0 never read)
    else:
        next_a = jnp.concatenate([a[1:], a[:1]], axis=0)  # a_{t+1} (entry T-1 never read)
    lam = _loop(next_a, g, jnp.zeros_like(h0), not reverse)
    prev = (hs[1:], h0[None]) if reverse else (h0[None], hs[:-1])
    da = lam * jnp.concatenate(prev, axis=0)
    if a.ndim == 1:
        da = da.sum(axis=(0, 1))
    dh0 = (a if a.ndim == 1 else a[first]) * lam[first]
    return da.astype(a.dtype), lam, dh0.astype(h0.dtype)


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def _sequential(
    a: Array,
    b: Array,
    h0: Array,
    valid: Array | None,
    restart: Array | None,
    reset_state: Array | None,
    reverse: bool,
    custom_backward: bool,
) -> tuple[Array, Array]:
    """The loop from ``h0``, padding and restarts folded into ``(a, b)`` when there are any."""
    if valid is not None or restart is not None:
        a, b = fold_masks(a, b, valid=valid, restart=restart, reset_state=reset_state, h0=h0)
    run = _recurrence if custom_backward else _loop
    hs: Array = run(a, b, h0, reverse)  # pyright: ignore[reportAssignmentType]
    h_final = hs[0] if reverse else hs[-1]  # padded steps are identities: the last valid state
    if valid is not None:
        hs = jnp.where(valid[..., None], hs, jnp.zeros_like(hs))
    return h_final, hs


def linear_recurrence(
    a: Array,
    b: Array,
    h0: Array,
    *,
    valid: Array | None = None,
    resets: Array | None = None,
    reset_state: Array | None = None,
    reverse: bool = False,
    method: Method = "associative",
) -> tuple[Array, Array]:
    """Run ``h_t = a_t * h_{t-1} + b_t`` (elementwise): ``a, b (T, B, N), h0 (B, N)``.

    ``a`` may also be ``(N,)``, one coefficient for every step and sequence (the LRU's ``λ``);
    the sequential loop then reads it once instead of a ``(T, B, N)`` copy (1.8x faster
    measured for a complex LRU state).

    Returns ``(h_final (B, N), hs (T, B, N))`` in the promoted dtype of ``a, b, h0`` (real or
    complex).

    - ``valid (T, B)`` bool (e.g. ``t < lengths[b]``): a padded step leaves the state as it
      is and its output is zero; ``h_final`` is the state after the last valid step.
    - ``reverse=True``: the loop runs ``T-1 -> 0``, ``hs[t]`` is the state after step ``t``,
      and ``h_final`` the state after step 0. With ``valid`` from lengths the padded tail is
      visited first and holds ``h0``, so each sequence's reverse pass starts from its own
      last valid step with ``h0``, as in PyTorch's packed sequences.
    - ``resets (T, B)`` bool, always in the forward convention: true where a new segment
      starts. Forwards, the state is replaced by ``h0`` before that step; backwards (converted
      here, see :func:`restarts`) before the last step of every segment, so each segment's
      reverse pass starts from ``h0`` at its own end. Either way this equals running every
      segment separately from ``h0``. A reset on a padded step is ignored.
    - ``reset_state (B, N)``: what a reset restarts from, if not ``h0``. Running a long
      sequence in chunks passes the previous chunk's ``h_final`` as ``h0`` and the initial
      state as ``reset_state``; the result equals one call over the whole sequence.
    - ``method``: ``"associative"`` (the masks folded into the elements by :func:`elements`,
      then ``jax.lax.associative_scan``: ``O(log T)`` depth, ``O(T log T)`` work) or
      ``"sequential"`` (``jax.lax.scan`` from ``h0``, with a hand-written backward pass; under
      forward-mode autodiff, ``jax.jvp`` or ``jax.jacfwd``, the scan is differentiated by
      JAX instead). Same results to rounding; on CPU ``"sequential"`` is the faster at every
      ``T`` measured (``benchmarks/families.py``).
    """
    return _linear_recurrence(
        a, b, h0, valid=valid, resets=resets, reset_state=reset_state, reverse=reverse,
        method=method, custom_backward=not forward_mode(a, b, h0, reset_state),
    )  # fmt: skip


# Jitted so an eager call compiles once per shape instead of dispatching op by op (the
# associative scan is hundreds of small ops); under an outer jit it inlines. Which autodiff
# mode is tracing is read before the jit: inside it the tracers are abstract.
@functools.partial(jax.jit, static_argnames=("reverse", "method", "custom_backward"))
def _linear_recurrence(
    a: Array,
    b: Array,
    h0: Array,
    *,
    valid: Array | None,
    resets: Array | None,
    reset_state: Array | None,
    reverse: bool,
    method: Method,
    custom_backward: bool,
) -> tuple[Array, Array]:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    a, b, h0 = _check_inputs(a, b, h0)
    steps, batch = b.shape[:2]
    valid = _check_mask("valid", valid, steps, batch)
    resets = _check_mask("resets", resets, steps, batch)
    if reset_state is not None:
        reset_state = jnp.asarray(reset_state)
        if reset_state.shape != h0.shape:
            raise ValueError(
                f"reset_state must have shape (B, N) = {h0.shape}, got shape {reset_state.shape}"
            )
        reset_state = reset_state.astype(h0.dtype)
    restart = None if resets is None else restarts(resets, valid, reverse=reverse)
    return run_recurrence(
        a, b, h0, valid=valid, restart=restart, reset_state=reset_state, reverse=reverse,
        method=method, custom_backward=custom_backward,
    )  # fmt: skip


def run_recurrence(
    a: Array,
    b: Array,
    h0: Array,
    *,
    valid: Array | None,
    restart: Array | None,
    reset_state: Array | None,
    reverse: bool,
    method: str,
    custom_backward: bool = True,
) -> tuple[Array, Array]:
    """:func:`linear_recurrence` on checked inputs, with the restarts already in loop order
    (``restart (T, B)``: the carry becomes ``reset_state`` before that step; see
    :func:`restarts`). This is what the kernels call: their resets come in loop order.
    ``custom_backward=False`` lets JAX differentiate the sequential loop (forward mode)."""
    if b.shape[0] == 0:
        return h0, b
    if method == "sequential":
        return _sequential(a, b, h0, valid, restart, reset_state, reverse, custom_backward)
    a = jnp.broadcast_to(a, b.shape)
    ea, eb = elements(
        a, b, h0, valid=valid, restart=restart, reset_state=reset_state, reverse=reverse
    )
    hs = _associative(ea, eb, reverse)
    h_final = hs[0] if reverse else hs[-1]
    if valid is not None:
        hs = jnp.where(valid[..., None], hs, jnp.zeros_like(hs))
    return h_final, hs


# --- the kernels ---------------------------------------------------------------------------


def _kernel(method: str):
    def run(
        family: Family,
        params: Params,
        xs: Array,
        carry: Array,
        *,
        init: Array | None = None,
        valid: Array | None = None,
        resets: Array | None = None,
        mask: Array | None = None,
        reverse: bool = False,
        unroll: int | bool = 1,
        matmul_dtype: Any = None,
    ) -> tuple[Array, Array]:
        """``xs (T, B, I) -> (final state (B, N), ys (T, B, H))`` of a linear family: its
        coefficients for all steps at once, the recurrence, then its readout."""
        del mask, unroll, matmul_dtype  # refused by supports() / fixed for this kernel
        assert family.linear is not None
        restart = None
        if resets is not None:
            restart = resets if valid is None else resets & valid
        if restart is not None and family.linear.start_coefficients is not None:
            # the segment starts are in the coefficients (a = 0 there): nothing to restart
            a, b = family.linear.start_coefficients(params, xs, restart)
            restart = None
        else:
            a, b = family.linear.coefficients(params, xs)
        final, hs = run_recurrence(
            a, b, carry, valid=valid, restart=restart, reset_state=init, reverse=reverse,
            method=method,
        )  # fmt: skip
        ys = family.linear.readout(params, hs, xs)
        if valid is not None:  # a readout may add to the state (LRU's D x): zero padding
            ys = jnp.where(valid[..., None], ys, jnp.zeros_like(ys))
        return final, ys

    return run


run_associative = _kernel("associative")
run_sequential = _kernel("sequential")
