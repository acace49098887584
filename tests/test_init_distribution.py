"""Initialisation: every parameter is i.i.d. ``U(-1/√H, 1/√H)``, as ``torch.nn.RNNBase``.

Checked for linen (``model.init``) and nnx modules of every family: bounds, mean and variance
(``b²/3``) within 5 standard errors, a Kolmogorov–Smirnov test against the uniform law
(scipy), no two parameters drawn alike, and a two-sample KS test against torch's own
initialisation of the same module.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxrnn.linen
import jaxrnn.nnx

stats = pytest.importorskip("scipy.stats")

INPUT, HIDDEN = 24, 36
BOUND = 1.0 / math.sqrt(HIDDEN)
P_MIN = 1e-4  # deterministic seeds: a fixed p-value, far from the threshold when correct


def _linen(family: str) -> dict[str, np.ndarray]:
    kw = dict(num_layers=2, bidirectional=True)
    model = {
        "rnn": jaxrnn.linen.RNN(HIDDEN, **kw),
        "lstm": jaxrnn.linen.LSTM(HIDDEN, proj_size=7, **kw),
        "gru": jaxrnn.linen.GRU(HIDDEN, **kw),
    }[family]
    params = model.init(jax.random.key(0), jnp.zeros((3, 2, INPUT)))["params"]
    return {k: np.asarray(v) for k, v in params.items()}


def _nnx(family: str) -> dict[str, np.ndarray]:
    cls = {"rnn": jaxrnn.nnx.RNN, "lstm": jaxrnn.nnx.LSTM, "gru": jaxrnn.nnx.GRU}[family]
    extra = {"proj_size": 7} if family == "lstm" else {}
    layer = cls(INPUT, HIDDEN, 2, bidirectional=True, **extra, rngs=nnx.Rngs(0))
    return {k: np.asarray(v) for k, v in layer.state_dict().items()}


def _check_uniform(params: dict[str, np.ndarray]) -> None:
    values = []
    for name, p in params.items():
        v = p.astype(np.float64).ravel()
        assert v.min() >= -BOUND and v.max() <= BOUND, name
        se_mean = BOUND / math.sqrt(3 * v.size)
        assert abs(v.mean()) < 5 * se_mean, (name, v.mean(), se_mean)
        var = BOUND**2 / 3
        se_var = math.sqrt((BOUND**4 / 5 - var**2) / v.size)  # Var of x² for U(-b, b)
        assert abs(v.var() - var) < 5 * se_var, (name, v.var(), var)
        if v.size >= 100:
            p_value = stats.kstest(v, stats.uniform(-BOUND, 2 * BOUND).cdf).pvalue
            assert p_value > P_MIN, (name, p_value)
        values.append(v)
    pooled = np.concatenate(values)
    assert stats.kstest(pooled, stats.uniform(-BOUND, 2 * BOUND).cdf).pvalue > P_MIN
    firsts = [v[:32] for v in values]  # independent streams: no two tensors start alike
    assert len({v.tobytes() for v in firsts}) == len(firsts)


@pytest.mark.parametrize("api", ["linen", "nnx"])
@pytest.mark.parametrize("family", ["rnn", "lstm", "gru"])
def test_init_is_uniform_plus_minus_one_over_sqrt_hidden(family, api):
    params = _linen(family) if api == "linen" else _nnx(family)
    _check_uniform(params)


@pytest.mark.parametrize("family", ["rnn", "lstm", "gru"])
def test_init_matches_torchs_own_distribution(family):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True)
    m = {
        "rnn": lambda: torch.nn.RNN(INPUT, HIDDEN, **kw),
        "lstm": lambda: torch.nn.LSTM(INPUT, HIDDEN, proj_size=7, **kw),
        "gru": lambda: torch.nn.GRU(INPUT, HIDDEN, **kw),
    }[family]()
    theirs = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    ours = _nnx(family)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    a = np.concatenate([v.ravel() for v in ours.values()])
    b = np.concatenate([v.ravel() for v in theirs.values()])
    assert stats.ks_2samp(a, b).pvalue > P_MIN
