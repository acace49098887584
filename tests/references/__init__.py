"""Float64 NumPy references for every registered family, written from the papers and
PyTorch's documented equations, independent of ``jaxrnn.families``.

Each module here defines ``STEPS = {family_name: step}`` with
``step(p, carry, x) -> (carry, y)``: ``p`` one layer-direction's parameters without the
``_l{k}`` suffix (NumPy arrays), ``carry`` a tuple with one array per state component (in
the order of ``Family.state_shapes``), ``x (B, *features)``. A new family adds one module
(``tests/references/<name>.py``); :func:`step_of` finds it, and ``tests/test_registry.py``
fails for a registered family that has none.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np


def steps() -> dict:
    found: dict = {}
    for info in pkgutil.iter_modules(__path__):
        found |= getattr(importlib.import_module(f"{__name__}.{info.name}"), "STEPS", {})
    return found


def step_of(name: str):
    return steps().get(name)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def affine(x, w, b=None):
    """``x @ w.T + b``: PyTorch's ``(out, in)`` weight layout."""
    y = x @ w.T
    return y if b is None else y + b
