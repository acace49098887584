"""Small helpers shared by the linear-recurrence families (private to ``jaxrnn.families``)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array


def project(x: Array, weight: Array, bias: Array | None = None) -> Array:
    """``x @ weight.T + bias`` over any leading axes, as one 2-D matmul: ``(..., I) -> (..., O)``.

    ``weight`` is ``(O, I)`` (PyTorch's layout). Flattening ``(T, B, I)`` to ``(T*B, I)``
    first is what makes the projection of a whole sequence fast on CPU (a 3-D ``x @ W`` was
    measured several times slower in its backward pass).
    """
    lead = x.shape[:-1]
    y = x.reshape(-1, x.shape[-1]) @ weight.T
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, weight.shape[0])


def check_real(name: str, x: Array) -> Array:
    """``x`` as an array, or a ``TypeError`` if it is not real floating point."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be a real floating-point array, got dtype {x.dtype}")
    return x


def check_input(x: Array, input_size: int, ndim: int) -> Array:
    """Check a real input ``(B, I)`` (``ndim=2``) or ``(T, B, I)`` (``ndim=3``)."""
    x = check_real("x", x)
    if x.ndim != ndim or x.shape[-1] != input_size:
        axes = "(T, B, I)" if ndim == 3 else "(B, I)"
        raise ValueError(f"x must have shape {axes} with I = {input_size}, got shape {x.shape}")
    return x


def uniform(key: Array, shape: tuple[int, ...], bound: float, dtype) -> Array:
    """``U(-bound, bound)`` samples, PyTorch's recurrent-layer initialisation."""
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def input_projection_shapes(
    gates: int, input_size: int, hidden_size: int, bias: bool
) -> dict[str, tuple[int, ...]]:
    """``weight_ih (G*H, I)`` and ``bias_ih (G*H,)``: the only weights of a recurrence whose
    gates read the input alone (minGRU, minLSTM)."""
    shapes: dict[str, tuple[int, ...]] = {"weight_ih": (gates * hidden_size, input_size)}
    if bias:
        shapes["bias_ih"] = (gates * hidden_size,)
    return shapes


def uniform_params(
    key: Array, shapes: dict[str, tuple[int, ...]], hidden_size: int, dtype
) -> dict[str, Array]:
    """Every parameter of ``shapes`` drawn ``U(-1/√H, 1/√H)``, one key each."""
    keys = jax.random.split(key, len(shapes))
    bound = 1.0 / math.sqrt(hidden_size)
    return {n: uniform(k, s, bound, dtype) for k, (n, s) in zip(keys, shapes.items(), strict=True)}
