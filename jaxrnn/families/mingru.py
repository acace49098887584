"""minGRU: Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?"
(arXiv:2410.01201), §3.1 "A Minimal GRU: minGRU".

Equations (§3.1), with ``Linear`` one affine map of the input only::

    z_t = σ(Linear_z(x_t))                          update gate
    h̃_t = Linear_h(x_t)                             candidate state
    h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t

Neither gate reads ``h_{t-1}``, so the step is the linear recurrence ``h_t = a_t h_{t-1} + b_t``
with ``a_t = 1 - z_t`` and ``b_t = z_t h̃_t`` (:func:`coefficients`), runnable by
:func:`jaxrnn.kernels.parallel.linear_recurrence`. The output is the state: ``y_t = h_t``.

Family option ``candidate``: ``"linear"`` (default) is the candidate above; ``"g"`` is the
paper's log-space variant (its appendix "Parallel Scan: Log-Space Implementation"),
``h̃_t = g(Linear_h(x_t))`` with ``g(x) = x + 0.5 if x >= 0 else σ(x)``, which keeps ``h̃``
positive so the whole recurrence can run on logarithms (:func:`log_coefficients`). ``"g"`` is
what ``mingru-pytorch`` (``minGRU_pytorch/minGRU.py``, ``minGRU.forward``) runs; the two agree
on the same weights (``tests/test_reference_parity.py``). Choose it with
``Layout("mingru", I, H, options=(("candidate", "g"),))``, ``linen.MinGRU(options=...)``,
``nnx.MinGRU(..., options={"candidate": "g"})`` or, for :func:`jaxrnn.layer`, the family value
``MINGRU.with_options(candidate="g")``. Every kernel runs either candidate in linear space.

Parameters, PyTorch-style names per layer: ``weight_ih (2H, I)`` holding the ``[z; h̃]``
blocks, ``bias_ih (2H,)``. Carry ``h (B, H)``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Literal

import jax
import jax.numpy as jnp

from jaxrnn.families._common import (
    Array,
    check_input,
    input_projection_shapes,
    project,
    uniform_params,
)
from jaxrnn.families.base import Family, Linear, affine_sizes, no_projection

Params = Mapping[str, Array]
Candidate = Literal["linear", "g"]
CANDIDATES = ("linear", "g")


def check_candidate(candidate: str) -> None:
    """``candidate`` is one of ``CANDIDATES`` (a clear ``ValueError`` if not)."""
    if candidate not in CANDIDATES:
        raise ValueError(f"candidate must be one of {CANDIDATES}, got {candidate!r}")


def param_shapes(
    input_size: int, hidden_size: int, *, bias: bool = True, candidate: Candidate = "linear"
) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of one layer: ``weight_ih (2H, I)``, ``bias_ih (2H,)``."""
    check_candidate(candidate)
    return input_projection_shapes(2, input_size, hidden_size, bias)


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    dtype=jnp.float32,
    candidate: Candidate = "linear",
) -> dict[str, Array]:
    """Every parameter ``U(-1/√H, 1/√H)``, as ``torch.nn.GRU`` initialises its weights."""
    shapes = param_shapes(input_size, hidden_size, bias=bias, candidate=candidate)
    return uniform_params(key, shapes, hidden_size, dtype)


def init_carry(params: Params, batch: int) -> Array:
    """The zero state ``h (B, H)`` in the parameters' dtype."""
    weight = params["weight_ih"]
    return jnp.zeros((batch, weight.shape[0] // 2), weight.dtype)


def g(x: Array) -> Array:
    """``g(x) = x + 0.5`` if ``x >= 0`` else ``σ(x)`` (Feng et al. 2024, log-space appendix)."""
    return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_g(x: Array) -> Array:
    """``log g(x)``: ``log(x + 0.5)`` for ``x >= 0``, ``-softplus(-x)`` otherwise."""
    return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


def _preactivations(params: Params, x: Array) -> tuple[Array, Array]:
    k, pre = jnp.split(project(x, params["weight_ih"], params.get("bias_ih")), 2, axis=-1)
    return k, pre


def _ab(params: Params, x: Array, candidate: str) -> tuple[Array, Array]:
    """``a = 1 - z = σ(-k)`` and ``b = z ⊙ h̃`` (``1 - σ(k) = σ(-k)`` exactly, fewer roundings)."""
    check_candidate(candidate)
    k, pre = _preactivations(params, x)
    candidate_state = g(pre) if candidate == "g" else pre
    return jax.nn.sigmoid(-k), jax.nn.sigmoid(k) * candidate_state


def cell(
    params: Params, carry: Array, x: Array, *, candidate: Candidate = "linear"
) -> tuple[Array, Array]:
    """One step ``h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t``: ``x (B, I)``, carry, ``y (B, H)``."""
    x = check_input(x, params["weight_ih"].shape[1], 2)
    a, b = _ab(params, x, candidate)
    h = a * carry + b
    return h, h


def coefficients(
    params: Params, xs: Array, *, candidate: Candidate = "linear"
) -> tuple[Array, Array]:
    """``a_t = 1 - z_t``, ``b_t = z_t ⊙ h̃_t`` for all steps: ``xs (T, B, I) -> a, b (T, B, H)``."""
    xs = check_input(xs, params["weight_ih"].shape[1], 3)
    return _ab(params, xs, candidate)


def log_coefficients(
    params: Params, xs: Array, *, candidate: Candidate = "g"
) -> tuple[Array, Array]:
    """``log a_t = -softplus(k_t)``, ``log b_t = -softplus(-k_t) + log g(h̃pre_t)``, ``(T, B, H)``.

    The log-space form of Feng et al. 2024 (log-space appendix): ``log z = -softplus(-k)``,
    ``log(1 - z) = -softplus(k)``. Only defined for ``candidate="g"`` (``b > 0``).
    """
    if candidate != "g":
        raise ValueError(f"log_coefficients needs candidate='g' (b > 0), got {candidate!r}")
    xs = check_input(xs, params["weight_ih"].shape[1], 3)
    k, pre = _preactivations(params, xs)
    return -jax.nn.softplus(k), -jax.nn.softplus(-k) + log_g(pre)


def readout(params: Params, hs: Array, xs: Array) -> Array:
    """The output is the state: ``ys = hs (T, B, H)``."""
    del params, xs
    return hs


def _family(candidate: Candidate = "linear") -> Family:
    check_candidate(candidate)
    return Family(
        name="mingru",
        cell=functools.partial(cell, candidate=candidate),
        param_shapes=lambda s: param_shapes(s.input_size, s.hidden_size, bias=s.bias),
        read_sizes=affine_sizes(2),
        state_shapes=lambda s, batch: ((*batch, s.hidden_size),),
        kernels=("parallel", "sequential", "scan"),
        init_layer=lambda key, s, dtype: init(
            key, s.input_size, s.hidden_size, bias=s.bias, dtype=dtype
        ),
        linear=Linear(functools.partial(coefficients, candidate=candidate), readout),
        recurrent_dropout=False,
        check_sizes=no_projection,
        options=(("candidate", "linear"),),
        choices=(("candidate", CANDIDATES),),
        configure=lambda options: _family(options["candidate"]),
    )


MINGRU = _family()
