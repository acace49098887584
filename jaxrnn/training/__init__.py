"""Training helpers: the optimizer chain and jitted step, checkpoints, truncated BPTT,
data parallelism and gradient-flow diagnostics. Built on the layers below; nothing there
imports this package.
"""

from jaxrnn.training.checkpoint import restore_checkpoint, save_checkpoint
from jaxrnn.training.diagnostics import gradient_flow, plot_gradient_flow
from jaxrnn.training.optim import (
    make_train_step,
    optimizer,
    skip_nonfinite_steps,
    skipped_steps,
)
from jaxrnn.training.parallel import data_mesh, replicate, shard_batch
from jaxrnn.training.tbptt import carry_over, reset_carry, stream_batches, tbptt_scan

__all__ = [
    "carry_over",
    "data_mesh",
    "gradient_flow",
    "make_train_step",
    "optimizer",
    "plot_gradient_flow",
    "replicate",
    "reset_carry",
    "restore_checkpoint",
    "save_checkpoint",
    "shard_batch",
    "skip_nonfinite_steps",
    "skipped_steps",
    "stream_batches",
    "tbptt_scan",
]
