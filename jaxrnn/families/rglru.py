"""RG-LRU, the Real-Gated Linear Recurrent Unit: De, Smith, Fernando, Botev, Cristian-Muraru,
Gu, Haroun, Berrada, Chen, Srinivasan, Desjardins, Doucet, Budden, Teh, Pascanu, de Freitas &
Gulcehre 2024, "Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient
Language Models" (arXiv:2402.19427), §2.4.

Equations (§2.4, eqs. 1-4), with ``u_t`` the layer's input (width ``H``)::

    r_t = σ(W_a u_t + b_a)                              recurrence gate   (1)
    i_t = σ(W_x u_t + b_x)                              input gate        (2)
    a_t = a^(c r_t),  a = σ(Λ),  c = 8                                    (3)
    h_t = a_t ⊙ h_{t-1} + √(1 - a_t²) ⊙ (i_t ⊙ u_t)                      (4)

computed, as the paper advises, in log space: ``log a_t = -c r_t softplus(-Λ)``. This file
stores ``a_param = -Λ`` (the convention and name of the authors' recurrentgemma code), so
``log a_t = -c r_t softplus(a_param)``; ``√(1 - a_t²)`` is evaluated as
``√(-expm1(2 log a_t))``. As a linear recurrence ``a_t`` as above and
``b_t = √(1 - a_t²) ⊙ i_t ⊙ u_t`` (:func:`coefficients`); the output is the state.

Segment starts, as recurrentgemma 1.0.1 (``recurrentgemma/jax/layers.py``, ``RGLRU.__call__``:
``reset = segment_pos == 0``; the torch twin ``recurrentgemma/torch/layers.py`` does the same):
at the first step of a segment ``a_t = 0`` and the input is not normalised, so
``h_t = i_t ⊙ u_t`` whatever the carry (:func:`start_step`, :func:`start_coefficients`). A
segment starts at the first step of a call made without ``hx`` (each direction's first step:
``t = 0`` forwards, each sequence's last valid step backwards, ``lengths`` included) and at
every reset (backwards: each segment's last step). A call given ``hx`` continues a sequence:
its first step is an ordinary step from ``hx``, so a stream cut into chunks (or stepped with
:func:`jaxrnn.step`, which takes ``resets`` for a new episode) equals one call.

Where the recurrence gate saturates (``a_t = 1``, a gate pre-activation below about -87 in
float32), ``√(1 - a_t²)`` has an infinite derivative; as recurrentgemma's
``sqrt_bound_derivative`` (same file), its backward pass caps that derivative at
``MAX_SQRT_GRADIENT = 1000`` (:func:`sqrt_bounded_derivative`), so gradients stay finite.

The RG-LRU maps width ``H`` to ``H``. For ``input_size != hidden_size`` this file adds an input
projection ``u_t = W_in x_t + b_in`` (``weight_in (H, I)``, ``bias_in (H,)``); with
``I == H``, ``u_t = x_t``. Griffin's gates are block-diagonal (recurrentgemma's
``BlockDiagonalLinear``); here they are dense (``weight_ih (2H, H)`` holding the ``[r; i]``
blocks, ``bias_ih (2H,)``), which contains the block-diagonal case: recurrentgemma's
``a_gate.w[h]`` is the transposed ``h``-th diagonal block of ``weight_ih[:H]``, its
``input_gate`` of ``weight_ih[H:]`` (``tests/test_reference_parity.py`` maps one onto the
other).

Initialisation (§2.4 and recurrentgemma): ``a = σ(Λ)`` uniform in area on the ring
``[min_rad, max_rad] = [0.9, 0.999]`` (arguments of :func:`init`, i.e. ``a²`` uniform in
``[0.81, 0.998]``), gate and input-projection weights ``N(0, 1/fan_in)``, biases zero; ``c``
is an argument of the step functions (default 8). The family declares no options. Carry
``h (B, H)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import cast

import jax
import jax.numpy as jnp

from jaxrnn.families._common import Array, check_input, project
from jaxrnn.families.base import Family, Linear, Sizes, no_projection

Params = Mapping[str, Array]


def param_shapes(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    c: float = 8.0,
    min_rad: float = 0.9,
    max_rad: float = 0.999,
) -> dict[str, tuple[int, ...]]:
    """``weight_ih (2H, H)``, ``bias_ih (2H,)``, ``a_param (H,)``; ``weight_in (H, I)`` and
    ``bias_in (H,)`` when ``I != H``."""
    del c, min_rad, max_rad
    h = hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    if input_size != hidden_size:
        shapes["weight_in"] = (h, input_size)
        if bias:
            shapes["bias_in"] = (h,)
    shapes["weight_ih"] = (2 * h, h)
    if bias:
        shapes["bias_ih"] = (2 * h,)
    shapes["a_param"] = (h,)
    return shapes


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    dtype=jnp.float32,
    c: float = 8.0,
    min_rad: float = 0.9,
    max_rad: float = 0.999,
) -> dict[str, Array]:
    """Griffin's initialisation (see the module doc): ``a`` on the ring, weights ``N(0, 1/in)``."""
    if not 0.0 < min_rad < max_rad < 1.0:
        raise ValueError(f"need 0 < min_rad < max_rad < 1, got {min_rad}, {max_rad}")
    shapes = param_shapes(input_size, hidden_size, bias=bias)
    k_in, k_gates, k_a = jax.random.split(key, 3)
    params: dict[str, Array] = {}
    for name, shape in shapes.items():
        if name.startswith("bias"):
            params[name] = jnp.zeros(shape, dtype)
    if "weight_in" in shapes:
        params["weight_in"] = jax.random.normal(k_in, shapes["weight_in"], dtype) / math.sqrt(
            input_size
        )
    params["weight_ih"] = jax.random.normal(k_gates, shapes["weight_ih"], dtype) / math.sqrt(
        hidden_size
    )
    u = jax.random.uniform(k_a, (hidden_size,), dtype)
    log_a = 0.5 * jnp.log(u * (max_rad**2 - min_rad**2) + min_rad**2)  # log a, a on the ring
    params["a_param"] = jnp.log(jnp.expm1(-log_a))  # softplus(a_param) = -log a
    return {name: params[name] for name in shapes}


def init_carry(params: Params, batch: int) -> Array:
    """The zero state ``h (B, H)`` in the parameters' dtype."""
    a_param = params["a_param"]
    return jnp.zeros((batch, a_param.shape[0]), a_param.dtype)


def _input_size(params: Params) -> int:
    weight = params.get("weight_in", params["weight_ih"])
    return weight.shape[1]


# recurrentgemma's bound on d√x/dx (its ``sqrt_bound_derivative(1 - a², 1000)``).
MAX_SQRT_GRADIENT = 1000.0


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def sqrt_bounded_derivative(x: Array, max_gradient: float) -> Array:
    """``√x``, whose derivative ``1 / (2√x)`` is capped at ``max_gradient``.

    ``√(1 - a_t²)`` has an infinite derivative where the gate saturates (``a_t = 1``: a gate
    pre-activation below about -87 in float32 underflows ``σ``), which makes every gradient
    NaN. As recurrentgemma's ``SqrtBoundDerivative``, the backward pass evaluates the
    derivative at ``max(x, 1 / (4 max_gradient²))``, where it equals ``max_gradient``; the
    forward value is the exact ``√x``.
    """
    return jnp.sqrt(x)


def _sqrt_fwd(x: Array, max_gradient: float) -> tuple[Array, Array]:
    return jnp.sqrt(x), x


def _sqrt_bwd(max_gradient: float, x: Array, g: Array) -> tuple[Array]:
    floor = 1.0 / (4.0 * max_gradient**2)
    return (g / (2.0 * jnp.sqrt(jnp.maximum(x, floor))),)


sqrt_bounded_derivative.defvjp(_sqrt_fwd, _sqrt_bwd)


def _ab(params: Params, x: Array, c: float, start: Array | None = None) -> tuple[Array, Array]:
    u = project(x, params["weight_in"], params.get("bias_in")) if "weight_in" in params else x
    gates = jax.nn.sigmoid(project(u, params["weight_ih"], params.get("bias_ih")))
    r, i = jnp.split(gates, 2, axis=-1)
    log_a = -c * r * jax.nn.softplus(params["a_param"])  # eq. 3 in log space
    a = jnp.exp(log_a)
    scale = cast(Array, sqrt_bounded_derivative(-jnp.expm1(2 * log_a), MAX_SQRT_GRADIENT))
    if start is not None:  # a segment start: h = i ⊙ u, as recurrentgemma
        at_start = start[..., None]
        a = jnp.where(at_start, jnp.zeros_like(a), a)
        scale = jnp.where(at_start, jnp.ones_like(scale), scale)
    return a, scale * (i * u)


def cell(params: Params, carry: Array, x: Array, *, c: float = 8.0) -> tuple[Array, Array]:
    """One step ``h_t = a_t ⊙ h_{t-1} + √(1 - a_t²) ⊙ i_t ⊙ u_t`` (no segment starts here,
    see :func:`start_step`): ``x (B, I)``, carry and ``y (B, H)``."""
    x = check_input(x, _input_size(params), 2)
    a, b = _ab(params, x, c)
    h = a * carry + b
    return h, h


def start_step(
    params: Params, carry: Array, x: Array, start: Array, *, c: float = 8.0
) -> tuple[Array, Array]:
    """One step where ``start (B,)`` marks the sequences whose segment starts here; there
    ``h_t = i_t ⊙ u_t`` (``a_t = 0``, no normalisation) and the carry is not read."""
    x = check_input(x, _input_size(params), 2)
    a, b = _ab(params, x, c, start)
    h = a * carry + b
    return h, h


def coefficients(params: Params, xs: Array, *, c: float = 8.0) -> tuple[Array, Array]:
    """``a_t`` and ``b_t = √(1 - a_t²) ⊙ i_t ⊙ u_t``: ``xs (T, B, I) -> a, b (T, B, H)``."""
    xs = check_input(xs, _input_size(params), 3)
    return _ab(params, xs, c)


def start_coefficients(
    params: Params, xs: Array, starts: Array, *, c: float = 8.0
) -> tuple[Array, Array]:
    """:func:`coefficients` with ``a_t = 0`` and ``b_t = i_t ⊙ u_t`` where ``starts (T, B)``
    is true (a segment starts there): ``xs (T, B, I) -> a, b (T, B, H)``."""
    xs = check_input(xs, _input_size(params), 3)
    return _ab(params, xs, c, starts)


def readout(params: Params, hs: Array, xs: Array) -> Array:
    """The output is the state: ``ys = hs (T, B, H)``."""
    del params, xs
    return hs


def _read_sizes(params: Params) -> Sizes:
    a = params["a_param"]
    if getattr(a, "ndim", None) != 1:
        raise ValueError(
            f"a_param of an RG-LRU must be (H,), got shape {getattr(a, 'shape', None)}"
        )
    hidden = int(a.shape[0])
    w_in = params.get("weight_in")
    return Sizes(hidden if w_in is None else int(w_in.shape[1]), hidden)


RGLRU = Family(
    name="rglru",
    cell=cell,
    param_shapes=lambda s: param_shapes(s.input_size, s.hidden_size, bias=s.bias),
    read_sizes=_read_sizes,
    state_shapes=lambda s, batch: ((*batch, s.hidden_size),),
    kernels=("parallel", "sequential", "scan"),
    init_layer=lambda key, s, dtype: init(
        key, s.input_size, s.hidden_size, bias=s.bias, dtype=dtype
    ),
    linear=Linear(coefficients, readout, start_coefficients),
    recurrent_dropout=False,
    check_sizes=no_projection,
    start_step=start_step,
)
