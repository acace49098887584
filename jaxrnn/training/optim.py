"""The default optimizer chain and the jitted training step every example uses.

The opt-in guard :func:`skip_nonfinite_steps` (``optimizer(..., skip_nonfinite=True)``) wraps an
optimizer in ``optax.apply_if_finite``: a step whose loss or gradients hold a NaN or an inf
leaves parameters and optimizer state untouched, and :func:`skipped_steps` counts such steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax

PyTree = Any
LossFn = Callable[[PyTree, PyTree, jax.Array], tuple[jax.Array, PyTree]]
TrainStep = Callable[
    [PyTree, optax.OptState, PyTree, jax.Array],
    tuple[PyTree, optax.OptState, jax.Array, PyTree],
]


def optimizer(
    learning_rate: float | optax.Schedule = 1e-3,
    *,
    max_grad_norm: float | None = 1.0,
    weight_decay: float = 0.0,
    algorithm: Literal["adam", "sgd"] = "adam",
    skip_nonfinite: bool = False,
) -> optax.GradientTransformation:
    """``optax.chain(clip_by_global_norm(max_grad_norm), adam(learning_rate))``.

    Clipping the global gradient norm keeps one exploding step (a long sequence, a large
    recurrent weight) from throwing the parameters far away; ``max_grad_norm=None`` turns it
    off. ``weight_decay > 0`` makes it AdamW (decoupled decay). ``algorithm="sgd"`` is plain
    SGD after the clip, the classic recipe for RNN language models (Zaremba et al. 2014:
    ``learning_rate=1, max_grad_norm=5``). ``learning_rate`` may be an ``optax`` schedule.

    Args:
        learning_rate: a float or an ``optax`` schedule ``step -> learning rate``.
        max_grad_norm: the global gradient norm to clip to; ``None`` for no clipping.
        weight_decay: decoupled weight decay (AdamW; added before SGD with ``"sgd"``).
        algorithm: ``"adam"`` or ``"sgd"``.

    Returns:
        An ``optax.GradientTransformation``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.training import optimizer
        >>> opt = optimizer(1e-3, max_grad_norm=1.0)
        >>> params = {"w": jnp.zeros(3)}
        >>> updates, state = opt.update({"w": jnp.full(3, 100.0)}, opt.init(params), params)
        >>> updates["w"].shape
        (3,)
    """
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if algorithm == "adam":
        if weight_decay:
            opt = optax.adamw(learning_rate, weight_decay=weight_decay)
        else:
            opt = optax.adam(learning_rate)
    elif algorithm == "sgd":
        opt = optax.sgd(learning_rate)
        if weight_decay:
            opt = optax.chain(optax.add_decayed_weights(weight_decay), opt)
    else:
        raise ValueError(f"algorithm must be 'adam' or 'sgd', got {algorithm!r}")
    if max_grad_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(max_grad_norm), opt)
    return skip_nonfinite_steps(opt) if skip_nonfinite else opt


_NEVER_GIVE_UP = 2**31 - 2  # apply_if_finite's counter is int32 (safe_increment saturates)


def skip_nonfinite_steps(
    inner: optax.GradientTransformation, *, max_consecutive: int | None = None
) -> optax.GradientTransformation:
    """``optax.apply_if_finite(inner)``: skip every update whose gradients are not all finite.

    A skipped step returns zero updates and keeps ``inner``'s state (Adam's moments, the step
    count) as it was. :func:`make_train_step` also skips a step whose *loss* is non-finite when
    the optimizer state holds this guard. ``max_consecutive`` (default: never) is how many
    non-finite steps in a row are skipped before an update is applied anyway (optax's
    ``max_consecutive_errors``). Count the skips with :func:`skipped_steps`.

    Args:
        inner: the optimizer to guard, e.g. ``optax.adam(1e-3)``.
        max_consecutive: skip at most this many non-finite steps in a row (default: all).

    Returns:
        An ``optax.GradientTransformation`` whose state counts the skipped steps.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from jaxrnn.training import skip_nonfinite_steps, skipped_steps
        >>> opt = skip_nonfinite_steps(optax.sgd(0.1))
        >>> params = {"w": jnp.ones(2)}
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.array([jnp.nan, 1.0])}, state, params)
        >>> updates["w"].tolist(), int(skipped_steps(state))
        ([0.0, 0.0], 1)
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise TypeError(
            f"inner must be an optax.GradientTransformation, got {type(inner).__name__}"
        )
    if max_consecutive is None:
        max_consecutive = _NEVER_GIVE_UP
    if isinstance(max_consecutive, bool) or not isinstance(max_consecutive, int):
        raise TypeError(f"max_consecutive must be an int, got {type(max_consecutive).__name__}")
    if max_consecutive < 0:
        raise ValueError(f"max_consecutive must be >= 0, got {max_consecutive}")
    return optax.apply_if_finite(inner, max_consecutive)


def _guards(opt_state: optax.OptState) -> list[optax.ApplyIfFiniteState]:
    is_guard = lambda s: isinstance(s, optax.ApplyIfFiniteState)  # noqa: E731
    leaves = jax.tree.leaves(opt_state, is_leaf=is_guard)
    return [s for s in leaves if is_guard(s)]


def skipped_steps(opt_state: optax.OptState) -> jax.Array:
    """How many steps the :func:`skip_nonfinite_steps` guard in ``opt_state`` has skipped.

    Args:
        opt_state: the state of an optimizer built with :func:`skip_nonfinite_steps` (or
            ``optimizer(..., skip_nonfinite=True)``), alone or inside a chain.

    Returns:
        An int32 scalar (the guard's ``total_notfinite``; works under ``jit``). Raises
        ``ValueError`` if ``opt_state`` holds no guard.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.training import optimizer, skipped_steps
        >>> opt = optimizer(1e-3, skip_nonfinite=True)
        >>> int(skipped_steps(opt.init({"w": jnp.zeros(3)})))
        0
    """
    guards = _guards(opt_state)
    if not guards:
        raise ValueError(
            "opt_state holds no non-finite guard; build the optimizer with "
            "optimizer(..., skip_nonfinite=True) or skip_nonfinite_steps(...)"
        )
    return sum((g.total_notfinite for g in guards), start=jnp.zeros((), jnp.int32))


def make_train_step(
    loss_fn: LossFn, optimizer: optax.GradientTransformation, *, donate: bool = False
) -> TrainStep:
    """A jitted ``step(params, opt_state, batch, key) -> (params, opt_state, loss, aux)``.

    ``loss_fn(params, batch, key) -> (loss, aux)`` returns a scalar loss and any pytree of
    extras (metrics, a carried recurrent state); ``key`` is for dropout. With ``donate=True``
    the old ``params`` and ``opt_state`` buffers are reused for the new ones (saves memory on
    accelerators; the arrays passed in must not be used afterwards). When ``opt_state`` holds
    a :func:`skip_nonfinite_steps` guard, a non-finite loss makes the gradients NaN so that
    the guard skips the step (a finite loss leaves them as they are).

    Args:
        loss_fn: ``loss_fn(params, batch, key) -> (scalar loss, aux pytree)``.
        optimizer: an ``optax.GradientTransformation``, e.g. :func:`optimizer`.
        donate: donate the ``params`` and ``opt_state`` buffers to the step.

    Returns:
        The jitted ``step(params, opt_state, batch, key) -> (params, opt_state, loss, aux)``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrnn.training import make_train_step, optimizer
        >>> def loss_fn(params, batch, key):
        ...     loss = jnp.mean((batch @ params["w"] - 1.0) ** 2)
        ...     return loss, {"loss": loss}
        >>> opt = optimizer(0.1)
        >>> params = {"w": jnp.zeros(4)}
        >>> step = make_train_step(loss_fn, opt)
        >>> params, opt_state, loss, aux = step(
        ...     params, opt.init(params), jnp.ones((8, 4)), jax.random.key(0)
        ... )
        >>> float(loss)
        1.0
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}"
        )

    def step(params, opt_state, batch, key):
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        if _guards(opt_state):  # static: the state's structure is known when tracing
            ok = jnp.all(jnp.isfinite(loss))
            grads = jax.tree.map(lambda g: jnp.where(ok, g, jnp.full_like(g, jnp.nan)), grads)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, aux

    return jax.jit(step, donate_argnums=(0, 1) if donate else ())
