"""jaxrnn: recurrent layers for JAX and Flax with PyTorch's API, names and numbers.

Layers: ``families`` (one file per recurrence: parameter names, init, carry, reference step;
one registry) -> ``kernels`` (the loops: ``scan``, ``fused``, ``parallel``, plugins) ->
``functional`` (stacked, bidirectional layers with lengths and resets over PyTorch-named
params) -> ``linen`` / ``nnx`` (one generic Flax module each). ``interop`` moves weights to
and from PyTorch; ``training`` holds the helpers around a training loop; ``crf`` is a
linear-chain CRF head; ``sequences``, ``attention`` and ``dropout`` are building blocks.
"""

from jaxrnn import (
    attention,
    cells,
    crf,
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
from jaxrnn.functional import (
    Options,
    convlstm,
    gru,
    init_state,
    layer,
    layernorm_lstm,
    lru,
    lstm,
    mingru,
    minlstm,
    rglru,
    rnn,
    stack,
    step,
)

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 (modules, then functions)
    "attention",
    "cells",
    "crf",
    "dropout",
    "families",
    "functional",
    "interop",
    "kernels",
    "linen",
    "nnx",
    "params",
    "scan",
    "sequences",
    "training",
    "Options",
    "convlstm",
    "gru",
    "init_state",
    "layer",
    "layernorm_lstm",
    "lru",
    "lstm",
    "mingru",
    "minlstm",
    "rglru",
    "rnn",
    "stack",
    "step",
]
