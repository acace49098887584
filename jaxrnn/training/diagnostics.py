"""The vanishing-gradient picture: how much the loss depends on the state at every step."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells import Array, Carry, Cell, Params


def _add_to_output(new_carry: Carry, y: Array, eps: Array) -> tuple[Carry, Array]:
    """Perturb ``h_t`` everywhere it goes: the output and the carry leaf that *is* the output."""
    found = False

    def add(leaf):
        nonlocal found
        if leaf is y:
            found = True
            return leaf + eps
        return leaf

    new_carry = jax.tree.map(add, new_carry)
    if not found:
        raise ValueError(
            "gradient_flow needs a cell whose output y is also part of its carry (h for "
            "Elman/GRU, carry[0] for an LSTM), as every jaxrnn cell returns it"
        )
    return new_carry, y + eps


def gradient_flow(
    cell: Cell,
    params: Params,
    xs: Array,
    carry: Carry,
    loss_fn: Callable[[Array, Carry], Array],
) -> Array:
    """``||dL/dh_t||`` for every step: ``xs (T, B, I) -> (T,)``.

    ``loss_fn(ys (T, B, H), final_carry) -> scalar``. ``h_t`` is the state after step ``t``
    (the cell's output); the derivative is the total one, through the outputs and through all
    later steps, and the norm is over batch and features. It is computed in one backward
    pass by differentiating with respect to a zero perturbation added to every ``h_t``.

    Args:
        cell: a cell whose output ``y`` is also (part of) its carry, as every
            :mod:`jaxrnn.cells` cell returns it.
        params: the cell's parameters.
        xs: the inputs ``(T, B, I)``, time-major.
        carry: the initial state, e.g. ``(B, H)`` or ``(h, c)``.
        loss_fn: ``loss_fn(ys (T, B, H), final_carry) -> scalar``.

    Returns:
        ``(T,)``: ``||dL/dh_t||`` for ``t = 0, ..., T - 1``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrnn.cells import rnn_tanh_cell
        >>> from jaxrnn.params import Layout, init_params, layer_params
        >>> from jaxrnn.training import gradient_flow
        >>> params = layer_params(init_params(jax.random.key(0), Layout("rnn", 2, 8)), 0, False)
        >>> norms = gradient_flow(
        ...     rnn_tanh_cell, params, jnp.ones((50, 4, 2)), jnp.zeros((4, 8)),
        ...     lambda ys, final: jnp.sum(ys[-1] ** 2),
        ... )
        >>> norms.shape, bool(norms[0] < norms[-1])
        ((50,), True)
    """
    if xs.ndim != 3:
        raise ValueError(f"xs must be (T, B, I), got shape {xs.shape}")

    def step(c, inputs):
        x, eps = inputs
        new_c, y = cell(params, c, x)
        return _add_to_output(new_c, y, eps)

    def loss(eps):
        final, ys = jax.lax.scan(step, carry, (xs, eps))
        return loss_fn(ys, final)

    _, y0 = jax.eval_shape(lambda: cell(params, carry, xs[0]))
    grads = jax.grad(loss)(jnp.zeros((xs.shape[0], *y0.shape), y0.dtype))
    return jnp.sqrt(jnp.sum(grads**2, axis=tuple(range(1, grads.ndim))))


def plot_gradient_flow(
    norms: Mapping[str, Array], path: str | os.PathLike, *, title: str | None = None
) -> None:
    """Plot each model's ``(T,)`` norms against the time step on a log scale, save to ``path``.

    Needs matplotlib (the ``examples`` extra); it is imported here, not with jaxrnn.

    Args:
        norms: ``{model name: (T,) norms}``, e.g. from :func:`gradient_flow`.
        path: the image file to write (its suffix picks the format).
        title: the figure's title.

    Examples:
        >>> import os, tempfile
        >>> import jax.numpy as jnp
        >>> from jaxrnn.training import plot_gradient_flow
        >>> path = os.path.join(tempfile.mkdtemp(), "flow.png")
        >>> plot_gradient_flow({"rnn": 0.5 ** jnp.arange(20.0)}, path)
        >>> os.path.exists(path)
        True
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plot_gradient_flow needs matplotlib: pip install matplotlib") from e
    if not norms:
        raise ValueError("norms must map at least one model name to its (T,) norms")
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, values in norms.items():
        # NumPy keeps float64 norms; a jnp cast would round them to float32 without x64.
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"norms[{name!r}] must be 1-D (T,), got shape {values.shape}")
        ax.semilogy(range(len(values)), values, label=name)
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title(title or "gradient flow back through time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
