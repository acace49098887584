"""jaxrnn: recurrent layers for JAX and Flax with PyTorch's API, names and numbers.

Layers: ``cells`` (pure one-step functions) -> ``scan`` (the time loop) -> ``functional``
(stacked, bidirectional layers over PyTorch-named params) -> ``linen`` / ``nnx`` (Flax
modules). ``interop`` moves weights to and from PyTorch; ``training`` holds the helpers
around a training loop; ``sequences``, ``attention`` and ``dropout`` are building blocks.
"""

from jaxrnn import (
    attention,
    cells,
    crf,
    dropout,
    functional,
    interop,
    linen,
    nnx,
    params,
    scan,
    sequences,
    training,
)
from jaxrnn.functional import gru, lstm, rnn, stack

__version__ = "0.1.0"

__all__ = [
    "attention",
    "cells",
    "crf",
    "dropout",
    "functional",
    "gru",
    "interop",
    "linen",
    "lstm",
    "nnx",
    "params",
    "rnn",
    "scan",
    "sequences",
    "stack",
    "training",
]
