"""jaxrnn: recurrent layers for JAX and Flax with PyTorch's API, names and numbers.

Layers: ``families`` (one file per recurrence: parameter names, init, carry, reference step;
one registry) -> ``kernels`` (the loops: ``scan``, ``fused``, plugins) -> ``functional``
(stacked, bidirectional layers with lengths and resets over PyTorch-named params) ->
``linen`` / ``nnx`` (one generic Flax module each). ``interop`` moves weights to and from
PyTorch; ``training`` holds the helpers around a training loop; ``sequences``,
``attention`` and ``dropout`` are building blocks.
"""

# `name as name`: these are re-exports (the public API), listed in __all__ below.
from jaxrnn import (
    attention as attention,
)
from jaxrnn import (
    cells as cells,
)
from jaxrnn import (
    dropout as dropout,
)
from jaxrnn import (
    families as families,
)
from jaxrnn import (
    functional as functional,
)
from jaxrnn import (
    interop as interop,
)
from jaxrnn import (
    kernels as kernels,
)
from jaxrnn import (
    linen as linen,
)
from jaxrnn import (
    nnx as nnx,
)
from jaxrnn import (
    params as params,
)
from jaxrnn import (
    scan as scan,
)
from jaxrnn import (
    sequences as sequences,
)
from jaxrnn import (
    training as training,
)
from jaxrnn.functional import (
    Options as Options,
)
from jaxrnn.functional import (
    convlstm as convlstm,
)
from jaxrnn.functional import (
    gru as gru,
)
from jaxrnn.functional import (
    init_state as init_state,
)
from jaxrnn.functional import (
    layer as layer,
)
from jaxrnn.functional import (
    layernorm_lstm as layernorm_lstm,
)
from jaxrnn.functional import (
    lru as lru,
)
from jaxrnn.functional import (
    lstm as lstm,
)
from jaxrnn.functional import (
    mingru as mingru,
)
from jaxrnn.functional import (
    minlstm as minlstm,
)
from jaxrnn.functional import (
    rglru as rglru,
)
from jaxrnn.functional import (
    rnn as rnn,
)
from jaxrnn.functional import (
    stack as stack,
)
from jaxrnn.functional import (
    step as step,
)

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 (modules, then functions)
    "attention",
    "cells",
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
    "init_state",
    "lru",
    "mingru",
    "minlstm",
    "rglru",
    "step",
    "convlstm",
    "gru",
    "layer",
    "layernorm_lstm",
    "lstm",
    "rnn",
    "stack",
]
