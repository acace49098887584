"""LRU, the Linear Recurrent Unit: Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De 2023,
"Resurrecting Recurrent Neural Networks for Long Sequences" (ICML; arXiv:2303.06349).

A diagonal complex linear recurrence with a real readout (§2 eq. 1 with the changes of §3)::

    λ_j = exp(-exp(ν_j^log) + i exp(θ_j^log))        §3.3, exponential parameterisation
    γ_j = exp(γ_j^log), γ^log init log √(1 - |λ_j|²)  §3.4, normalisation
    x_k = λ ⊙ x_{k-1} + γ ⊙ (B u_k),  B = B_re + i B_im   (N, I)
    y_k = Re(C x_k) + D ⊙ u_k,  C = C_re + i C_im         (H, N)

so ``a_t = λ``, the same at every step (:func:`coefficients` returns it as ``(N,)``), and
``b_t = γ ⊙ (B u_t)``; the readout is :func:`readout`. The paper's skip ``D`` is a vector and
needs ``I == H``; when ``I != H`` this file makes ``D`` an ``(H, I)`` matrix
(``y = Re(C x) + D u``), a dense skip.

Initialisation (§3.3 Lemma 3.2 and the paper's Appendix A code): eigenvalues uniform on the
ring ``r_min <= |λ| <= r_max`` with phases in ``[0, max_phase]`` (family options, defaults
``0``, ``1``, ``2π`` as there), ``B_re, B_im ~ N(0, 1 / (2 I))``, ``C_re, C_im ~ N(0, 1 / N)``,
``D ~ N(0, 1)``. Family option ``state_size`` (``N``, default ``hidden_size``). The carry is
the complex state ``x (B, N)`` (``complex64`` for ``float32`` parameters). The LRU has no
biases: ``bias`` is accepted for a uniform signature and changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from jaxrnn.families._common import Array, check_input, project
from jaxrnn.families.base import Family, Linear, Sizes

Params = Mapping[str, Array]


def param_shapes(
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    state_size: int | None = None,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
) -> dict[str, tuple[int, ...]]:
    """``nu_log, theta_log, gamma_log (N,)``, ``B_re, B_im (N, I)``, ``C_re, C_im (H, N)``, ``D``.

    ``D`` is ``(H,)`` when ``I == H`` (the paper) and ``(H, I)`` otherwise.
    """
    del bias, r_min, r_max, max_phase
    n = hidden_size if state_size is None else state_size
    return {
        "nu_log": (n,),
        "theta_log": (n,),
        "gamma_log": (n,),
        "B_re": (n, input_size),
        "B_im": (n, input_size),
        "C_re": (hidden_size, n),
        "C_im": (hidden_size, n),
        "D": (hidden_size,) if input_size == hidden_size else (hidden_size, input_size),
    }


def init(
    key: Array,
    input_size: int,
    hidden_size: int,
    *,
    bias: bool = True,
    dtype=jnp.float32,
    state_size: int | None = None,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
) -> dict[str, Array]:
    """Ring initialisation of Orvieto et al. 2023 (Lemma 3.2, Appendix A); see the module doc."""
    if not 0.0 <= r_min < r_max <= 1.0:
        raise ValueError(f"need 0 <= r_min < r_max <= 1, got r_min={r_min}, r_max={r_max}")
    shapes = param_shapes(input_size, hidden_size, state_size=state_size)
    n = shapes["nu_log"][0]
    k = jax.random.split(key, 7)
    u1 = jax.random.uniform(k[0], (n,), dtype)
    u2 = jax.random.uniform(k[1], (n,), dtype)
    # |λ|² uniform in [r_min², r_max²]  <=>  λ uniform in area on the ring (Lemma 3.2)
    nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = jnp.log(max_phase * u2)
    modulus_sq = jnp.exp(-2 * jnp.exp(nu_log))
    gamma_log = jnp.log(jnp.sqrt(1 - modulus_sq))

    def normal(key, shape, std):
        return std * jax.random.normal(key, shape, dtype)

    return {
        "nu_log": nu_log,
        "theta_log": theta_log,
        "gamma_log": gamma_log,
        "B_re": normal(k[2], shapes["B_re"], 1 / math.sqrt(2 * input_size)),
        "B_im": normal(k[3], shapes["B_im"], 1 / math.sqrt(2 * input_size)),
        "C_re": normal(k[4], shapes["C_re"], 1 / math.sqrt(n)),
        "C_im": normal(k[5], shapes["C_im"], 1 / math.sqrt(n)),
        "D": normal(k[6], shapes["D"], 1.0),
    }


def complex_dtype(params: Params) -> jnp.dtype:
    """The state's dtype: the complex type of the parameters' precision."""
    return jnp.result_type(params["nu_log"].dtype, jnp.complex64)


def init_carry(params: Params, batch: int) -> Array:
    """The zero state ``x (B, N)``, complex."""
    return jnp.zeros((batch, params["nu_log"].shape[0]), complex_dtype(params))


def eigenvalues(params: Params) -> Array:
    """``λ = exp(-exp(ν^log) + i exp(θ^log))`` ``(N,)`` (Orvieto et al. 2023, §3.3).

    ``ν^log`` is capped at 20 where it enters: there ``|λ| = exp(-4.9e8)`` is already 0 in any
    float dtype and its derivative too, while past ~88 ``exp`` overflows (float32) and the
    derivative ``-exp(ν^log) |λ|`` would be ``inf * 0 = NaN``.
    """
    nu_log = jnp.minimum(params["nu_log"], 20.0)
    return jnp.exp(-jnp.exp(nu_log) + 1j * jnp.exp(params["theta_log"]))


def _drive(params: Params, x: Array) -> Array:
    """``γ ⊙ (B u)``: ``(..., I) -> (..., N)`` complex (Orvieto et al. 2023, §3.4).

    ``B_re`` and ``B_im`` are stacked into one ``(2N, I)`` matmul (one pass over ``x``).
    """
    n = params["nu_log"].shape[0]
    gamma = jnp.exp(params["gamma_log"])
    both = project(x, jnp.concatenate([params["B_re"], params["B_im"]], axis=0))
    real = jnp.promote_types(both.dtype, jnp.float32)  # complex64 from bf16/fp16 parameters
    return jax.lax.complex(
        (both[..., :n] * gamma).astype(real), (both[..., n:] * gamma).astype(real)
    )


def _output(params: Params, state: Array, x: Array) -> Array:
    """``Re(C x) + D u = C_re Re(x) - C_im Im(x) + D u``: ``(..., N), (..., I) -> (..., H)``.

    The two real products are one ``(H, 2N)`` matmul over ``[Re x, Im x]``.
    """
    c = jnp.concatenate([params["C_re"], -params["C_im"]], axis=1)
    y = project(jnp.concatenate([state.real, state.imag], axis=-1), c)
    d = params["D"]
    y = y + (d * x if d.ndim == 1 else project(x, d))
    # the state is complex64 at least; the output takes the dtype of the inputs and weights
    return y.astype(jnp.result_type(x, c))


def _check_state(carry: Array, params: Params) -> None:
    n = params["nu_log"].shape[0]
    if not jnp.issubdtype(jnp.asarray(carry).dtype, jnp.complexfloating):
        raise TypeError(f"the LRU state must be complex (B, {n}), got dtype {carry.dtype}")
    if carry.ndim != 2 or carry.shape[-1] != n:
        raise ValueError(f"the LRU state must have shape (B, {n}), got shape {carry.shape}")


def cell(params: Params, carry: Array, x: Array) -> tuple[Array, Array]:
    """One step ``x_k = λ ⊙ x_{k-1} + γ ⊙ (B u_k)``, ``y_k = Re(C x_k) + D u_k``.

    ``carry (B, N)`` complex, ``x (B, I)`` real, ``y (B, H)`` real.
    """
    x = check_input(x, params["B_re"].shape[1], 2)
    _check_state(carry, params)
    state = eigenvalues(params) * carry + _drive(params, x)
    return state, _output(params, state, x)


def coefficients(params: Params, xs: Array) -> tuple[Array, Array]:
    """``a = λ (N,)`` (the same at every step) and ``b_t = γ ⊙ (B u_t)`` ``(T, B, N)``, complex.

    :func:`jaxrnn.kernels.parallel.linear_recurrence` takes the time-invariant ``(N,)``
    coefficient as it is; ``jnp.broadcast_to(a, b.shape)`` gives the per-step form.
    """
    xs = check_input(xs, params["B_re"].shape[1], 3)
    b = _drive(params, xs)
    return eigenvalues(params).astype(b.dtype), b


def readout(params: Params, hs: Array, xs: Array) -> Array:
    """``ys = Re(C hs) + D xs``: ``hs (T, B, N)`` complex, ``xs (T, B, I)`` -> ``(T, B, H)``."""
    return _output(params, hs, xs)


def _options(sizes: Sizes) -> dict:
    options = dict(sizes.options)
    return {
        "state_size": options.get("state_size") or sizes.hidden_size,
        "r_min": options.get("r_min", 0.0),
        "r_max": options.get("r_max", 1.0),
        "max_phase": options.get("max_phase", 2 * math.pi),
    }


def _read_sizes(params: Params) -> Sizes:
    b, c = params["B_re"], params["C_re"]
    if getattr(b, "ndim", None) != 2 or getattr(c, "ndim", None) != 2:
        raise ValueError("B_re must be (N, I) and C_re (H, N)")
    n, hidden = int(b.shape[0]), int(c.shape[0])
    # 0 stands for "hidden_size", the default, so a layout read back equals the one made.
    return Sizes(int(b.shape[1]), hidden, options=(("state_size", 0 if n == hidden else n),))


def _check_sizes(sizes: Sizes) -> None:
    if sizes.proj_size:
        raise ValueError(f"the LRU has no projection, got proj_size={sizes.proj_size}")
    o = _options(sizes)
    if not 0.0 <= o["r_min"] < o["r_max"] <= 1.0:
        raise ValueError(
            f"need 0 <= r_min < r_max <= 1, got r_min={o['r_min']}, r_max={o['r_max']}"
        )


def _layer_init(key: Array, sizes: Sizes, dtype) -> dict[str, Array]:
    return init(key, sizes.input_size, sizes.hidden_size, dtype=dtype, **_options(sizes))


LRU = Family(
    name="lru",
    cell=cell,
    param_shapes=lambda s: param_shapes(s.input_size, s.hidden_size, **_options(s)),
    read_sizes=_read_sizes,
    state_shapes=lambda s, batch: ((*batch, _options(s)["state_size"]),),
    kernels=("parallel", "sequential", "scan"),
    init_layer=_layer_init,
    linear=Linear(coefficients, readout),
    recurrent_dropout=False,
    state_dtype=lambda dtype: jnp.result_type(dtype, jnp.complex64),
    options=(("state_size", 0), ("r_min", 0.0), ("r_max", 1.0), ("max_phase", 2 * math.pi)),
    check_sizes=_check_sizes,
)
