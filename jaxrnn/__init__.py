"""jaxrnn: recurrent layers for JAX and Flax with PyTorch's API, names and numbers.

Layers: ``cells`` (pure one-step functions) -> ``scan`` (the time loop) -> ``functional``
(stacked, bidirectional layers over PyTorch-named params) -> ``linen`` / ``nnx`` (Flax
modules). ``interop`` moves weights to and from PyTorch.
"""

from jaxrnn import cells, functional, interop, params, scan
from jaxrnn.functional import gru, lstm, rnn, stack

__version__ = "0.1.0"

__all__ = [
    "cells",
    "functional",
    "gru",
    "interop",
    "lstm",
    "params",
    "rnn",
    "scan",
    "stack",
]
