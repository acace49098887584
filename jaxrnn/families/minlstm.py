"""minLSTM: Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We Needed?"
(arXiv:2410.01201), §3.2 "A Minimal LSTM: minLSTM".

Equations (§3.2), gates of the input only, with the paper's normalisation that makes the
state's scale independent of time (its step "ensure output is time-independent in scale")::

    f_t = σ(Linear_f(x_t)),  i_t = σ(Linear_i(x_t))
    f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
    h̃_t = Linear_h(x_t)
    h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t

This is the normalised minLSTM (``f' + i' = 1``), the variant the paper trains; the output is
the state (``y_t = h_t``, no output gate). As a linear recurrence ``a_t = f'_t`` and
``b_t = i'_t h̃_t`` (:func:`coefficients`). ``f'`` and ``i'`` are computed as
``f' = σ(log f - log i)``, ``i' = σ(log i - log f)``, identical to the quotients above and
free of ``0/0`` when both gates underflow.

Family option ``candidate``: ``"linear"`` (default, as above) or ``"g"``, the log-space
variant's ``h̃_t = g(Linear_h(x_t))`` (see :func:`jaxrnn.families.mingru.g`), chosen as
minGRU's is (``options=(("candidate", "g"),)``, or ``MINLSTM.with_options(candidate="g")``).
Parameters: ``weight_ih (3H, I)`` holding the ``[f; i; h̃]`` blocks, ``bias_ih (3H,)``.
Carry ``h (B, H)``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

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
from jaxrnn.families.mingru import CANDIDATES, Candidate, check_candidate, g, log_g

Params = Mapping[str, Array]


def param_shapes(
    input_size: int, hidden_size: int, *, bias: bool = True, candidate: Candidate = "linear"
) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of one layer: ``weight_ih (3H, I)``, ``bias_ih (3H,)``."""
    check_candidate(candidate)
    return input_projection_shapes(3, input_size, hidden_size, bias)


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    dtype=jnp.float32,
    candidate: Candidate = "linear",
) -> dict[str, Array]:
    """Every parameter ``U(-1/√H, 1/√H)``, as ``torch.nn.LSTM`` initialises its weights."""
    shapes = param_shapes(input_size, hidden_size, bias=bias, candidate=candidate)
    return uniform_params(key, shapes, hidden_size, dtype)


def init_carry(params: Params, batch: int) -> Array:
    """The zero state ``h (B, H)`` in the parameters' dtype."""
    weight = params["weight_ih"]
    return jnp.zeros((batch, weight.shape[0] // 3), weight.dtype)


def _preactivations(params: Params, x: Array) -> tuple[Array, Array, Array]:
    kf, ki, pre = jnp.split(project(x, params["weight_ih"], params.get("bias_ih")), 3, axis=-1)
    return kf, ki, pre


def _log_ratio(kf: Array, ki: Array) -> Array:
    """``log(i / f) = log σ(k_i) - log σ(k_f) = softplus(-k_f) - softplus(-k_i)``."""
    return jax.nn.softplus(-kf) - jax.nn.softplus(-ki)


def _ab(params: Params, x: Array, candidate: str) -> tuple[Array, Array]:
    check_candidate(candidate)
    kf, ki, pre = _preactivations(params, x)
    d = _log_ratio(kf, ki)
    candidate_state = g(pre) if candidate == "g" else pre
    return jax.nn.sigmoid(-d), jax.nn.sigmoid(d) * candidate_state


def cell(
    params: Params, carry: Array, x: Array, *, candidate: Candidate = "linear"
) -> tuple[Array, Array]:
    """One step ``h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t``: ``x (B, I)``, carry, ``y (B, H)``."""
    x = check_input(x, params["weight_ih"].shape[1], 2)
    a, b = _ab(params, x, candidate)
    h = a * carry + b
    return h, h


def coefficients(
    params: Params, xs: Array, *, candidate: Candidate = "linear"
) -> tuple[Array, Array]:
    """``a_t = f'_t``, ``b_t = i'_t ⊙ h̃_t`` for all steps: ``xs (T, B, I) -> a, b (T, B, H)``."""
    xs = check_input(xs, params["weight_ih"].shape[1], 3)
    return _ab(params, xs, candidate)


def log_coefficients(
    params: Params, xs: Array, *, candidate: Candidate = "g"
) -> tuple[Array, Array]:
    """``log a_t = log f'_t = -softplus(d_t)``, ``log b_t = -softplus(-d_t) + log g(·)``.

    ``d_t = log(i_t / f_t)``; the log-space form of Feng et al. 2024 (log-space appendix).
    Only defined for ``candidate="g"`` (``b > 0``). Shapes ``(T, B, H)``.
    """
    if candidate != "g":
        raise ValueError(f"log_coefficients needs candidate='g' (b > 0), got {candidate!r}")
    xs = check_input(xs, params["weight_ih"].shape[1], 3)
    kf, ki, pre = _preactivations(params, xs)
    d = _log_ratio(kf, ki)
    return -jax.nn.softplus(d), -jax.nn.softplus(-d) + log_g(pre)


def readout(params: Params, hs: Array, xs: Array) -> Array:
    """The output is the state: ``ys = hs (T, B, H)``."""
    del params, xs
    return hs


def _family(candidate: Candidate = "linear") -> Family:
    check_candidate(candidate)
    return Family(
        name="minlstm",
        cell=functools.partial(cell, candidate=candidate),
        param_shapes=lambda s: param_shapes(s.input_size, s.hidden_size, bias=s.bias),
        read_sizes=affine_sizes(3),
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


MINLSTM = _family()
