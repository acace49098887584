"""GRU, ``torch.nn.GRU``'s documented equations (gates ``r, z, n``; ``r`` multiplies
``W_hn h + b_hn``)."""

import numpy as np

from references import affine, sigmoid


def gru_step(p, carry, x):
    (h,) = carry
    gi = affine(x, p["weight_ih"], p.get("bias_ih"))
    gh = affine(h, p["weight_hh"], p.get("bias_hh"))
    ir, iz, in_ = np.split(gi, 3, axis=-1)
    hr, hz, hn = np.split(gh, 3, axis=-1)
    r, z = sigmoid(ir + hr), sigmoid(iz + hz)
    n = np.tanh(in_ + r * hn)
    h = (1 - z) * n + z * h
    return (h,), h


STEPS = {"gru": gru_step}
