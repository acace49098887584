"""minGRU and minLSTM, Feng et al. 2024 (arXiv:2410.01201) §3.1 and §3.2, the normalised
minLSTM; the output is the state. Written as the paper's quotients, not in log space."""

import numpy as np

from references import affine, sigmoid


def mingru_step(p, carry, x):
    (h,) = carry
    k, candidate = np.split(affine(x, p["weight_ih"], p.get("bias_ih")), 2, axis=-1)
    z = sigmoid(k)
    h = (1 - z) * h + z * candidate
    return (h,), h


def minlstm_step(p, carry, x):
    (h,) = carry
    kf, ki, candidate = np.split(affine(x, p["weight_ih"], p.get("bias_ih")), 3, axis=-1)
    f, i = sigmoid(kf), sigmoid(ki)
    h = f / (f + i) * h + i / (f + i) * candidate
    return (h,), h


STEPS = {"mingru": mingru_step, "minlstm": minlstm_step}
