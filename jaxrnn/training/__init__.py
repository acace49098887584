"""Training helpers: the optimizer chain and jitted step, checkpoints, truncated BPTT,
data parallelism and gradient-flow diagnostics. Built on the layers below; nothing there
imports this package.
"""

from jaxrnn.training.checkpoint import restore_checkpoint, save_checkpoint
from jaxrnn.training.optim import make_train_step, optimizer

__all__ = [
    "make_train_step",
    "optimizer",
    "restore_checkpoint",
    "save_checkpoint",
]
