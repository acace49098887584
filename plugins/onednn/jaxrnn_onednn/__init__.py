"""oneDNN's fused RNN primitives (LSTM, GRU, Elman RNN) as JAX functions on the CPU.

:func:`rnn_layer` runs one layer (one or both directions), :func:`rnn` a stack named like a
``torch.nn`` state_dict. Both are differentiable (``jax.custom_vjp`` with oneDNN's training
workspace), jit-able and vmap-able (sequentially over the mapped axis). :func:`available`
says whether the native library loaded; ``JAXRNN_DISABLE_ONEDNN=1`` turns it off.
"""

from __future__ import annotations

import functools

from jaxrnn_onednn._lib import DISABLE_ENV, LoadError, library
from jaxrnn_onednn._rnn import MODES, rnn, rnn_layer, split_state_dict

__all__ = [
    "DISABLE_ENV",
    "MODES",
    "LoadError",
    "available",
    "cache_info",
    "load_error",
    "onednn_version",
    "rnn",
    "rnn_layer",
    "split_state_dict",
]


@functools.cache
def load_error() -> str | None:
    """Why the native kernels are unavailable, or None when they loaded."""
    try:
        library()
    except LoadError as err:
        return str(err)
    return None


def available() -> bool:
    """Whether the native library loaded, registered its FFI targets and runs on this CPU."""
    return load_error() is None


def onednn_version() -> str:
    """The version of the oneDNN library in use, e.g. ``"3.2.0"``."""
    v = library().jaxrnn_onednn_version()
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


def cache_info() -> dict[str, int]:
    """Size and capacity of the primitive cache (``JAXRNN_ONEDNN_CACHE_SIZE``, default 64)."""
    lib = library()
    return {"size": lib.jaxrnn_onednn_cache_size(), "capacity": lib.jaxrnn_onednn_cache_capacity()}
