"""LSTM, ``torch.nn.LSTM``'s documented equations (gates ``i, f, g, o``; ``proj_size`` via
``weight_hr``)."""

import numpy as np

from references import affine, sigmoid


def lstm_step(p, carry, x):
    h, c = carry
    z = affine(x, p["weight_ih"], p.get("bias_ih")) + affine(h, p["weight_hh"], p.get("bias_hh"))
    i, f, g, o = np.split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    if "weight_hr" in p:
        h = h @ p["weight_hr"].T
    return (h, c), h


STEPS = {"lstm": lstm_step}
