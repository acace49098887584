"""Elman RNN, ``torch.nn.RNN``'s documented step: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``."""

import numpy as np

from references import affine


def _step(act):
    def step(p, carry, x):
        (h,) = carry
        h = act(
            affine(x, p["weight_ih"], p.get("bias_ih"))
            + affine(h, p["weight_hh"], p.get("bias_hh"))
        )
        return (h,), h

    return step


STEPS = {"rnn_tanh": _step(np.tanh), "rnn_relu": _step(lambda z: np.maximum(z, 0.0))}
