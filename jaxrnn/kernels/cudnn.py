"""The native GPU kernel: cuDNN's RNN, from the optional ``jaxrnn_cudnn`` plugin
(``plugins/cudnn``, C++ through the XLA FFI).

When the plugin is installed (and ``JAXRNN_DISABLE_CUDNN`` is not set), importing
:mod:`jaxrnn.kernels` registers the ``"cudnn"`` kernel for the Elman, LSTM and GRU
families; it runs where JAX's default backend is a CUDA GPU and the plugin loads there. A
whole stack runs in one cuDNN call as ``torch.nn`` runs it (:func:`run_stack`); with dropout
between layers or ``remat`` it runs one layer-direction per call (a reverse direction is the
forward kernel on the time-reversed sequence). float32, reverse-mode differentiation
(``custom_vjp`` over cuDNN's training forward and backward), TF32 by default as torch and XLA
on the GPU, full float32 under ``jax.default_matmul_precision("highest")``.
``backend="auto"`` takes it where a wisdom table says it is fastest, else by the built-in GPU
rules (:mod:`jaxrnn.kernels.rules`: Elman RNNs, large ``batch * hidden``, long sequences of
a small state); ``backend="cudnn"`` forces it. If cuDNN refuses a call at trace time,
``"auto"`` runs the XLA kernel instead with one warning, and a forced ``"cudnn"`` raises.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.families.base import Array, Carry, Family
from jaxrnn.families.gru import GRU
from jaxrnn.families.lstm import LSTM
from jaxrnn.families.rnn import RNN_RELU, RNN_TANH
from jaxrnn.kernels import fused, rules, scan

FAMILIES = (RNN_TANH.name, RNN_RELU.name, LSTM.name, GRU.name)
INSTALL = (
    "pip install nvidia-cudnn-cu13==9.28.1.4 nvidia-cuda-runtime==13.5.37 "
    "nvidia-cuda-crt==13.5.37 && "
    "pip install --no-build-isolation -e plugins/cudnn (see plugins/cudnn/README.md)"
)
_warned: set[str] = set()


def load() -> ModuleType | None:
    """The plugin module if it is installed and not disabled.

    Importing it touches no GPU (jaxrnn's import must not initialize JAX's backends); whether
    it can run here (a CUDA GPU, libcudnn) is asked at call time, by :func:`supports`.
    """
    if os.environ.get("JAXRNN_DISABLE_CUDNN", "") not in ("", "0"):
        return None
    try:
        import jaxrnn_cudnn  # pyright: ignore[reportMissingImports]
    except ImportError:
        return None
    return jaxrnn_cudnn


def _unavailable() -> str | None:
    plugin = load()
    if plugin is None:
        return f"the jaxrnn_cudnn plugin is not installed or is disabled: {INSTALL}"
    try:
        reason = plugin.load_error()
    except Exception as e:  # a broken install must not take jaxrnn down with it
        reason = repr(e)
    return None if reason is None else f"the jaxrnn_cudnn plugin cannot run here: {reason}"


def supports(family: Family, call: Any) -> str | None:
    """Why the cuDNN kernel cannot run ``call`` (``None`` if it can)."""
    if family.name not in FAMILIES:
        return f"cuDNN runs {list(FAMILIES)}, not {family.name}"
    if jax.default_backend() != "gpu":
        return f"cuDNN runs on an NVIDIA GPU, the default backend is {jax.default_backend()}"
    reason = _unavailable()
    if reason is not None:
        return reason
    reasons = {
        "lengths": (
            "lengths run on the XLA kernels (one direction per call here; "
            "jaxrnn_cudnn.rnn takes them for a whole stack)"
        ),
        "resets": "resets run on the XLA kernels (cuDNN has no mid-sequence resets)",
        "recurrent_dropout": "recurrent dropout runs on the XLA kernels",
        "forward_mode": "its backward is reverse-mode only (jax.jvp needs backend='scan')",
    }
    for field, reason in reasons.items():
        if getattr(call, field):
            return reason
    if call.matmul_dtype is not None:
        return (
            "matmul_dtype runs on the fused kernel (cuDNN's bfloat16 keeps the state in bfloat16)"
        )
    if call.dtype is not None and jnp.dtype(call.dtype) != jnp.float32:
        return f"the cuDNN kernel runs float32 here, got {jnp.dtype(call.dtype)}"
    return None


def prefer(family: Family, call: Any) -> bool:
    """Whether ``backend="auto"``'s built-in GPU rules take cuDNN (:mod:`.rules`)."""
    return rules.cudnn_preferred(family.name, call.batch, call.hidden, call.steps)


def _layer(family: Family, params: Any, xs: Array, carry: Carry, reverse: bool):
    reason = _unavailable()
    plugin = load()
    if reason is not None or plugin is None:
        raise ValueError(f"backend='cudnn' cannot run: {reason}")
    lstm = family.name == LSTM.name
    h0, c0 = carry if lstm else (carry, None)
    x = xs[::-1] if reverse else xs
    ys, h_n, c_n = plugin.rnn_layer(
        family.name, [dict(params)], x, h0[None], None if c0 is None else c0[None]
    )
    ys = ys[::-1] if reverse else ys
    return ((h_n[0], c_n[0]) if lstm else h_n[0]), ys


def run_stack(
    family: Family, layers: list[list[Any]], xs: Array, carries: list[list[Carry]]
) -> tuple[Array, list[list[Carry]]]:
    """A whole stack (every layer and direction) in one cuDNN call, as ``torch.nn`` runs it:
    ``xs (T, B, I) -> (ys (T, B, D*O), finals nested like carries)``.

    One call lets cuDNN overlap the layers and keeps the backward to one call too; it is what
    :func:`jaxrnn.functional.stack` takes for this kernel when no dropout and no ``remat``
    ask for layer-by-layer control. Any failure raises (a trace-time refusal under "auto" is
    caught by the caller, which then runs layer by layer).
    """
    reason = _unavailable()
    plugin = load()
    if reason is not None or plugin is None:
        raise ValueError(f"backend='cudnn' cannot run: {reason}")
    lstm = family.name == LSTM.name
    flat = {}
    for k, layer in enumerate(layers):
        for d, p in enumerate(layer):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            flat.update({f"{name}{suffix}": v for name, v in p.items()})
    pairs = [c for layer in carries for c in layer]
    if lstm:
        hx = (jnp.stack([c[0] for c in pairs]), jnp.stack([c[1] for c in pairs]))
    else:
        hx = jnp.stack(pairs)
    ys, state = plugin.rnn(family.name, flat, xs, hx)
    dirs = len(layers[0])
    finals = [
        [
            (state[0][k * dirs + d], state[1][k * dirs + d]) if lstm else state[k * dirs + d]
            for d in range(dirs)
        ]
        for k in range(len(layers))
    ]
    return ys, finals


def run_strict(family: Family, params: Any, xs: Array, carry: Carry, *, reverse: bool = False,
               **kwargs: Any) -> tuple[Carry, Array]:  # fmt: skip
    """One layer-direction on cuDNN (``backend="cudnn"``): any failure raises."""
    del kwargs  # refused by supports(): init, valid, resets, mask, unroll, matmul_dtype
    return _layer(family, params, xs, carry, reverse)


def run(family: Family, params: Any, xs: Array, carry: Carry, *, reverse: bool = False,
        **kwargs: Any) -> tuple[Carry, Array]:  # fmt: skip
    """One layer-direction on cuDNN, or, if cuDNN refuses it at trace time, on the XLA
    kernel with one warning (what ``"auto"`` gets)."""
    try:
        return _layer(family, params, xs, carry, reverse)
    except (RuntimeError, ValueError) as err:
        key = f"{family.name}: {err}"
        if key not in _warned:
            _warned.add(key)
            warnings.warn(
                f"cuDNN cannot run this {family.name} layer ({err}); using the XLA kernel",
                RuntimeWarning,
                stacklevel=2,
            )
        fallback = fused.run if family.fused is not None else scan.run
        return fallback(family, params, xs, carry, reverse=reverse, **kwargs)
