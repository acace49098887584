"""The default optimizer chain and the jitted training step every example uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
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
    if max_grad_norm is None:
        return opt
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), opt)


def make_train_step(
    loss_fn: LossFn, optimizer: optax.GradientTransformation, *, donate: bool = False
) -> TrainStep:
    """A jitted ``step(params, opt_state, batch, key) -> (params, opt_state, loss, aux)``.

    ``loss_fn(params, batch, key) -> (loss, aux)`` returns a scalar loss and any pytree of
    extras (metrics, a carried recurrent state); ``key`` is for dropout. With ``donate=True``
    the old ``params`` and ``opt_state`` buffers are reused for the new ones (saves memory on
    accelerators; the arrays passed in must not be used afterwards).

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
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, aux

    return jax.jit(step, donate_argnums=(0, 1) if donate else ())
