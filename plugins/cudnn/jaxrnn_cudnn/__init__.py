"""cuDNN's RNN kernels (LSTM with projection, GRU, Elman RNN) as JAX functions on NVIDIA GPUs.

:func:`rnn` runs a stack named like a ``torch.nn`` state_dict in one cuDNN call,
:func:`rnn_layer` one layer. Both are differentiable (``jax.custom_vjp`` over cuDNN's
training forward, backward-data and backward-weights), jit-able, and take ``lengths``.
:func:`available` says whether the library loaded and a CUDA GPU is there;
``JAXRNN_DISABLE_CUDNN=1`` turns it off. ``python -m jaxrnn_cudnn.selfcheck`` prints what it
finds and runs a quick parity check on the GPU.
"""

from __future__ import annotations

import functools

from jaxrnn_cudnn._layout import Shape, canonical, pack, unpack
from jaxrnn_cudnn._lib import DISABLE_ENV, LoadError, library, shared_library
from jaxrnn_cudnn._rnn import ALGOS, MODES, PRECISIONS, choose_algo, rnn, rnn_layer

__all__ = [
    "ALGOS",
    "DISABLE_ENV",
    "MODES",
    "PRECISIONS",
    "LoadError",
    "Shape",
    "available",
    "canonical",
    "choose_algo",
    "cudnn_version",
    "load_error",
    "pack",
    "rnn",
    "rnn_layer",
    "unpack",
]


@functools.cache
def load_error() -> str | None:
    """Why the cuDNN kernels are unavailable, or None when they loaded."""
    try:
        library()
    except LoadError as err:
        return str(err)
    return None


def available() -> bool:
    """Whether the native library loaded, a CUDA GPU is there and the FFI targets are set."""
    return load_error() is None


def cudnn_version() -> str:
    """The version of the cuDNN library loaded, e.g. ``"9.28.1"`` (no GPU needed)."""
    v = shared_library().jaxrnn_cudnn_version()
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"
