"""Layer-normalised LSTM (Ba, Kiros & Hinton 2016, "Layer Normalization", eqs. 20-22).

``(i, f, g, o) = LN(W_ih x; γ_ih, β_ih) + LN(W_hh h; γ_hh, β_hh)``,
``c' = σ(f) c + σ(i) tanh(g)``, ``h' = σ(o) tanh(LN(c'; γ_c, β_c))``. Each ``LN`` normalises
over its whole vector (``4H`` for the pre-activations, ``H`` for the cell), ``ε = 1e-5``.
Parameters: ``weight_ih (4H, I)``, ``weight_hh (4H, H)`` (gate blocks in PyTorch's order
``i, f, g, o``), the gains ``ln_ih_weight (4H,)``, ``ln_hh_weight (4H,)``, ``ln_cell_weight (H,)``
(initialised to 1) and, with ``bias``, the shifts ``ln_ih_bias``, ``ln_hh_bias``,
``ln_cell_bias`` (initialised to 0; they take the place of the LSTM's biases). Carry
``(h (B, H), c (B, H))``, final state ``(h_n, c_n)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrnn.families.base import Array, Family, Params, Sizes, affine_sizes, default_init

EPS = 1e-5


def layer_norm(z: Array, gain: Array, shift: Array | None) -> Array:
    """``(z - mean) / sqrt(var + ε) * gain + shift`` over the last axis."""
    mean = z.mean(axis=-1, keepdims=True)
    var = jnp.square(z - mean).mean(axis=-1, keepdims=True)
    out = (z - mean) * jax.lax.rsqrt(var + EPS) * gain
    return out if shift is None else out + shift


def layernorm_lstm_cell(params: Params, carry: tuple[Array, Array], x: Array):
    """One step; carry ``(h (B, H), c (B, H))``, ``x (B, I)``, output ``h' (B, H)``."""
    h, c = carry
    z = layer_norm(x @ params["weight_ih"].T, params["ln_ih_weight"], params.get("ln_ih_bias"))
    z = z + layer_norm(h @ params["weight_hh"].T, params["ln_hh_weight"], params.get("ln_hh_bias"))
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    c_norm = layer_norm(c, params["ln_cell_weight"], params.get("ln_cell_bias"))
    h = jax.nn.sigmoid(o) * jnp.tanh(c_norm)
    return (h, c), h


def _shapes(sizes: Sizes) -> dict[str, tuple[int, ...]]:
    g, h = 4 * sizes.hidden_size, sizes.hidden_size
    shapes: dict[str, tuple[int, ...]] = {
        "weight_ih": (g, sizes.input_size),
        "weight_hh": (g, h),
        "ln_ih_weight": (g,),
        "ln_hh_weight": (g,),
        "ln_cell_weight": (h,),
    }
    if sizes.bias:
        shapes |= {"ln_ih_bias": (g,), "ln_hh_bias": (g,), "ln_cell_bias": (h,)}
    return shapes


def _init(key: Array, name: str, shape: tuple[int, ...], sizes: Sizes, dtype) -> Array:
    if name.startswith("ln_"):
        return jnp.ones(shape, dtype) if name.endswith("weight") else jnp.zeros(shape, dtype)
    return default_init(key, name, shape, sizes, dtype)


def _check_sizes(sizes: Sizes) -> None:
    if sizes.proj_size:
        raise ValueError(f"the layer-norm LSTM has no projection, got proj_size={sizes.proj_size}")


LAYERNORM_LSTM = Family(
    name="layernorm_lstm",
    cell=layernorm_lstm_cell,
    param_shapes=_shapes,
    read_sizes=affine_sizes(4),
    state_shapes=lambda sizes, batch: ((*batch, sizes.hidden_size),) * 2,
    state_names=("h_n", "c_n"),
    init=_init,
    check_sizes=_check_sizes,
)
