"""Convolutional LSTM, Shi et al. 2015, eq. 3 without peepholes, ``"SAME"`` padding."""

import numpy as np

from references import sigmoid


def conv_same(x, w):
    """Cross-correlation, ``x (B, Hs, Ws, Cin)``, ``w (O, Cin, kh, kw)``, as loops."""
    kh, kw = w.shape[2:]
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    out = np.zeros((*x.shape[:3], w.shape[0]), np.result_type(x, w))
    for a in range(kh):
        for b in range(kw):
            patch = xp[:, a : a + x.shape[1], b : b + x.shape[2], :]
            out += patch @ w[:, :, a, b].T
    return out


def convlstm_step(p, carry, x):
    h, c = carry
    z = conv_same(x, p["weight_ih"]) + conv_same(h, p["weight_hh"])
    if "bias_ih" in p:
        z = z + p["bias_ih"] + p["bias_hh"]
    i, f, g, o = np.split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return (h, c), h


STEPS = {"convlstm": convlstm_step}
