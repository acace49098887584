"""LRU, Orvieto et al. 2023, §2 eq. 1 with §3.3's exponential parameterisation and §3.4's
normalisation: ``x_k = λ x_{k-1} + γ (B u_k)``, ``y_k = Re(C x_k) + D u_k``; complex state."""

import numpy as np


def lru_step(p, carry, u):
    (x,) = carry
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    gamma = np.exp(p["gamma_log"])
    b = p["B_re"] + 1j * p["B_im"]
    c = p["C_re"] + 1j * p["C_im"]
    x = lam * x + gamma * (u @ b.T)
    d = p["D"]
    y = (x @ c.T).real + (d * u if d.ndim == 1 else u @ d.T)
    return (x,), y


STEPS = {"lru": lru_step}
