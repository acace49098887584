"""Layer-normalised LSTM, Ba et al. 2016, eqs. 20-22."""

import numpy as np

from references import sigmoid


def _ln(z, gain, shift):
    mean = z.mean(-1, keepdims=True)
    var = ((z - mean) ** 2).mean(-1, keepdims=True)
    return (z - mean) / np.sqrt(var + 1e-5) * gain + shift


def layernorm_lstm_step(p, carry, x):
    h, c = carry
    z = _ln(x @ p["weight_ih"].T, p["ln_ih_weight"], p["ln_ih_bias"])
    z = z + _ln(h @ p["weight_hh"].T, p["ln_hh_weight"], p["ln_hh_bias"])
    i, f, g, o = np.split(z, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(_ln(c, p["ln_cell_weight"], p["ln_cell_bias"]))
    return (h, c), h


STEPS = {"layernorm_lstm": layernorm_lstm_step}
