"""jaxrnn: recurrent layers for JAX and Flax with PyTorch's API, names and numbers.

Layers: ``families`` (one file per recurrence: parameter names, init, carry, reference step;
one registry) -> ``kernels`` (the loops: ``scan``, ``fused``, plugins) -> ``functional``
(stacked, bidirectional layers with lengths and resets over PyTorch-named params) ->
``linen`` / ``nnx`` (one generic Flax module each). ``interop`` moves weights to and from PyTorch; ``training`` holds the helpers
around a training loop; ``sequences``, ``attention`` and ``dropout`` are building blocks.
"""

from jaxrnn import (
    attention,
    cells,
    dropout,
    families,
    functional,
    interop,
    kernels,
    linen,
    nnx,
    params,
    scan,
    sequences,
    training,
)
from jaxrnn.functional import Options, convlstm, gru, layer, layernorm_lstm, lstm, rnn, stack

__version__ = "0.1.0"

__all__ = sorted(  # every public module and layer function above
    name for name in dir() if not name.startswith("_") and name != "annotations"
)
