"""The native CPU kernel: oneDNN's fused RNN primitives, from the optional ``jaxrnn_onednn``
plugin (``plugins/onednn``, C++ through the XLA FFI).

When the plugin is installed and loads (and ``JAXRNN_DISABLE_ONEDNN`` is not set), importing
:mod:`jaxrnn.kernels` registers the ``"onednn"`` kernel for the Elman, LSTM and GRU families.
It runs what oneDNN computes exactly as PyTorch does (the same primitives ``torch.nn.LSTM``
runs on the CPU): float32, no ``lengths`` or resets, no recurrent dropout, reverse-mode
differentiation (``custom_vjp`` over oneDNN's training forward and backward). Every other call
runs on the XLA kernels. ``backend="auto"`` takes it where a wisdom table measured on the
machine says it is fastest, else by the built-in CPU rule (:mod:`jaxrnn.kernels.rules`: LSTM
layers with ``batch * hidden >= 1024``, measured faster than the fused XLA loop on an Intel
Xeon, BENCHMARKS.md); ``backend="onednn"`` forces it. Without the plugin, forcing it is a clear
error that says how to install it.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.families.base import Array, Carry, Family, Params
from jaxrnn.families.gru import GRU
from jaxrnn.families.lstm import LSTM
from jaxrnn.families.rnn import RNN_RELU, RNN_TANH
from jaxrnn.kernels import rules

FAMILIES = (RNN_TANH.name, RNN_RELU.name, LSTM.name, GRU.name)
INSTALL = "pip install --no-build-isolation -e plugins/onednn (see plugins/onednn/README.md)"


def load() -> ModuleType | None:
    """The plugin module if it is installed, loads on this machine and is not disabled."""
    if os.environ.get("JAXRNN_DISABLE_ONEDNN", "") not in ("", "0"):
        return None
    try:
        import jaxrnn_onednn  # pyright: ignore[reportMissingImports]
    except ImportError:
        return None
    try:
        if jaxrnn_onednn.available():
            return jaxrnn_onednn
        reason = jaxrnn_onednn.load_error()
    except Exception as e:  # a broken install must not take jaxrnn down with it
        reason = repr(e)
    warnings.warn(
        f"jaxrnn_onednn is installed but cannot run here ({reason}); using the XLA kernels",
        RuntimeWarning,
        stacklevel=2,
    )
    return None


def supports(family: Family, call: Any) -> str | None:
    """Why the oneDNN kernel cannot run ``call`` (``None`` if it can)."""
    if family.name not in FAMILIES:
        return f"oneDNN runs {list(FAMILIES)}, not {family.name}"
    if jax.default_backend() != "cpu":
        return "oneDNN runs on the CPU"
    reasons = {
        "lengths": "lengths run on the XLA kernels (oneDNN has no per-sequence lengths)",
        "resets": "resets run on the XLA kernels",
        "recurrent_dropout": "recurrent dropout runs on the XLA kernels",
        "forward_mode": "its backward is reverse-mode only (jax.jvp needs backend='scan')",
    }
    for field, reason in reasons.items():
        if getattr(call, field):
            return reason
    if call.matmul_dtype is not None:
        return "matmul_dtype runs on the fused kernel"
    if call.dtype is not None and jnp.dtype(call.dtype) != jnp.float32:
        return f"oneDNN runs float32, got {jnp.dtype(call.dtype)}"
    return None


def prefer(family: Family, call: Any) -> bool:
    """Whether ``backend="auto"``'s built-in rules take oneDNN for this call."""
    return rules.onednn_preferred(family.name, call.batch, call.hidden)


def run(
    family: Family,
    params: Params,
    xs: Array,
    carry: Carry,
    *,
    init: Carry = None,
    valid: Array | None = None,
    resets: Array | None = None,
    mask: Array | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    matmul_dtype: Any = None,
) -> tuple[Carry, Array]:
    """One layer-direction on oneDNN: ``xs (T, B, I) -> (final carry, ys (T, B, H_out))``."""
    del init, valid, resets, mask, unroll, matmul_dtype  # refused by supports()
    plugin = load()
    if plugin is None:
        raise ValueError(f"backend='onednn' needs the jaxrnn_onednn plugin: {INSTALL}")
    lstm = family.name == LSTM.name
    h0, c0 = carry if lstm else (carry, None)
    # A reverse direction is the forward primitive on the time-reversed sequence.
    x = xs[::-1] if reverse else xs
    ys, h_n, c_n = plugin.rnn_layer(
        family.name, [dict(params)], x, h0[None], None if c0 is None else c0[None]
    )
    ys = ys[::-1] if reverse else ys
    return ((h_n[0], c_n[0]) if lstm else h_n[0]), ys
