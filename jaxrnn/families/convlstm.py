"""Convolutional LSTM (Shi et al. 2015, "Convolutional LSTM Network", eq. 3, without the
peephole terms, as Keras' ``ConvLSTM2D`` and flax's ``ConvLSTMCell``).

Inputs are images: ``x (T, B, Hs, Ws, C_in)``, channels last. The LSTM's matmuls become 2-D
convolutions with ``"SAME"`` padding and stride 1:
``(i, f, g, o) = W_ih * x + b_ih + W_hh * h + b_hh``, ``c' = σ(f) c + σ(i) tanh(g)``,
``h' = σ(o) tanh(c')``. Parameters in PyTorch's ``Conv2d`` layout (``OIHW``):
``weight_ih (4C, C_in, kh, kw)``, ``weight_hh (4C, C, kh, kw)``, ``bias_ih (4C,)``,
``bias_hh (4C,)`` with ``C = hidden_size`` channels and gate blocks ``i, f, g, o``; the family
option ``kernel_size`` is ``(kh, kw)`` (default ``(3, 3)``). Carry ``(h, c)``, each
``(B, Hs, Ws, C)``; final state ``(h_n, c_n)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxrnn.families.base import Array, Family, Params, Sizes, default_init


def conv(x: Array, weight: Array, bias: Array | None) -> Array:
    """``"SAME"`` 2-D convolution: ``x (B, Hs, Ws, C_in)``, ``weight (O, C_in, kh, kw)``."""
    y = jax.lax.conv_general_dilated(
        x, weight, (1, 1), "SAME", dimension_numbers=("NHWC", "OIHW", "NHWC")
    )
    return y if bias is None else y + bias


def convlstm_cell(params: Params, carry: tuple[Array, Array], x: Array):
    """One step; ``x (B, Hs, Ws, C_in)``, carry ``(h, c)`` each ``(B, Hs, Ws, C)``."""
    h, c = carry
    z = conv(x, params["weight_ih"], params.get("bias_ih"))
    z = z + conv(h, params["weight_hh"], params.get("bias_hh"))
    i, f, g, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def _kernel_size(sizes: Sizes) -> tuple[int, int]:
    k = sizes.option("kernel_size", (3, 3))
    k = (k, k) if isinstance(k, int) else tuple(k)
    if len(k) != 2 or not all(isinstance(v, int) and v >= 1 for v in k):
        raise ValueError(f"kernel_size must be a positive int or a pair of them, got {k!r}")
    return k  # type: ignore[return-value]


def _shapes(sizes: Sizes) -> dict[str, tuple[int, ...]]:
    kh, kw = _kernel_size(sizes)
    g, c = 4 * sizes.hidden_size, sizes.hidden_size
    shapes: dict[str, tuple[int, ...]] = {
        "weight_ih": (g, sizes.input_size, kh, kw),
        "weight_hh": (g, c, kh, kw),
    }
    if sizes.bias:
        shapes |= {"bias_ih": (g,), "bias_hh": (g,)}
    return shapes


def _read_sizes(params: Params) -> Sizes:
    w = params["weight_ih"]
    if getattr(w, "ndim", None) != 4 or w.shape[0] % 4:
        raise ValueError(
            "weight_ih of a ConvLSTM must be 4-D (4 * hidden_size, in_channels, kh, kw), "
            f"got shape {getattr(w, 'shape', None)}"
        )
    kernel = (int(w.shape[2]), int(w.shape[3]))
    return Sizes(int(w.shape[1]), int(w.shape[0]) // 4, options=(("kernel_size", kernel),))


def _init(key: Array, name: str, shape: tuple[int, ...], sizes: Sizes, dtype) -> Array:
    # PyTorch's Conv2d default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in * kh * kw.
    if name.startswith("weight") or name.startswith("bias"):
        kh, kw = _kernel_size(sizes)
        fan_in = (sizes.input_size if name.endswith("ih") else sizes.hidden_size) * kh * kw
        bound = 1.0 / math.sqrt(fan_in)
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return default_init(key, name, shape, sizes, dtype)


def _check_sizes(sizes: Sizes) -> None:
    if sizes.proj_size:
        raise ValueError(f"ConvLSTM has no projection, got proj_size={sizes.proj_size}")
    _kernel_size(sizes)


CONVLSTM = Family(
    name="convlstm",
    cell=convlstm_cell,
    param_shapes=_shapes,
    read_sizes=_read_sizes,
    state_shapes=lambda sizes, batch: ((*batch, sizes.hidden_size),) * 2,
    state_names=("h_n", "c_n"),
    init=_init,
    feature_ndim=3,
    options=(("kernel_size", (3, 3)),),
    check_sizes=_check_sizes,
)
