"""RG-LRU, De et al. 2024 (Griffin) §2.4 eqs. 1-4, with ``a = σ(Λ)`` stored as
``a_param = -Λ`` and an input projection when ``I != H``; computed directly, not in log space.
At a segment start (``start``: a sequence's first step) ``a_t = 0`` and the input is not
normalised, ``h = i ⊙ u``, as recurrentgemma 1.0.1's ``RGLRU.__call__`` does."""

import numpy as np

from references import affine, sigmoid

C = 8.0


def rglru_step(p, carry, x, start=False):
    (h,) = carry
    u = affine(x, p["weight_in"], p.get("bias_in")) if "weight_in" in p else x
    r, i = np.split(sigmoid(affine(u, p["weight_ih"], p.get("bias_ih"))), 2, axis=-1)
    a = sigmoid(-p["a_param"]) ** (C * r)  # eq. 3: a_t = a^(c r_t), a = σ(Λ)
    start = np.reshape(start, (-1,) + (1,) * (h.ndim - 1))
    h = np.where(start, i * u, a * h + np.sqrt(1 - a**2) * (i * u))  # eq. 4
    return (h,), h


STEPS = {"rglru": rglru_step}
