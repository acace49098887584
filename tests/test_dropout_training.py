"""Dropout between layers in training mode (LSTM, GRU, Elman; uni- and bidirectional).

The mask is observed without reading jaxrnn's key handling: layer 1 is a *probe* whose
output is ``tanh(x)`` (GRU, Elman) or ``tanh(tanh(x))`` (LSTM) of one input feature each
(saturated gates, no recurrence), so a zero in the output is a dropped feature of layer 0's
output. In float64 this checks: the fraction dropped is the rate (within 5 binomial standard
errors), masks are drawn afresh per time step, kept values are scaled by ``1 / (1 - p)``
exactly (against torch's layer 0 times the mask), the same key gives the same result and
another key another one, and the gradients (parameters and input, with ordinary layer-1
weights) equal torch autograd through the same mask to 1e-12. Linen and nnx training modes
use the same between-layer dropout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxrnn
import jaxrnn.linen
import jaxrnn.nnx

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

torch = pytest.importorskip("torch")

I, H, T, B, RATE = 3, 8, 20, 32, 0.3
SAT = 1e3  # a gate bias that saturates sigmoid to exactly 0 or 1 in float64
CASES = [("lstm", False), ("gru", False), ("lstm", True), ("gru", True), ("rnn", True)]


def _fn(mode: str):
    return {"rnn": jaxrnn.rnn, "lstm": jaxrnn.lstm, "gru": jaxrnn.gru}[mode]


def _probe_layer(mode: str, bidirectional: bool) -> dict[str, jax.Array]:
    """Layer-1 params whose direction ``d`` outputs ``f(x[..., d*H:(d+1)*H])`` elementwise."""
    dirs = 2 if bidirectional else 1
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[mode]
    out = {}
    for d, suffix in enumerate(["_l1", "_l1_reverse"][:dirs]):
        select = np.zeros((H, dirs * H))
        select[:, d * H : (d + 1) * H] = np.eye(H)
        w_ih = np.zeros((gates * H, dirs * H))
        b_ih = np.zeros(gates * H)
        if mode == "rnn":
            w_ih[:] = select
        elif mode == "gru":  # gates r, z, n: z = 0, so h = n = tanh(x)
            w_ih[2 * H :] = select
            b_ih[H : 2 * H] = -SAT
        else:  # gates i, f, g, o: i = o = 1, f = 0, so c = tanh(x), h = tanh(c)
            w_ih[2 * H : 3 * H] = select
            b_ih[:H], b_ih[H : 2 * H], b_ih[3 * H :] = SAT, -SAT, SAT
        out[f"weight_ih{suffix}"] = jnp.asarray(w_ih)
        out[f"weight_hh{suffix}"] = jnp.zeros((gates * H, H))
        out[f"bias_ih{suffix}"] = jnp.asarray(b_ih)
        out[f"bias_hh{suffix}"] = jnp.zeros(gates * H)
    return out


def _inverse_probe(mode: str, y: np.ndarray) -> np.ndarray:
    return np.arctanh(np.arctanh(y)) if mode == "lstm" else np.arctanh(y)


def _params(mode: str, bidirectional: bool, seed: int = 0) -> dict[str, jax.Array]:
    cls = {"rnn": jaxrnn.nnx.RNN, "lstm": jaxrnn.nnx.LSTM, "gru": jaxrnn.nnx.GRU}[mode]
    layer = cls(I, H, 2, bidirectional=bidirectional, param_dtype=jnp.float64, rngs=nnx.Rngs(seed))
    return layer.state_dict()


def _torch_layer(mode: str, bidirectional: bool, params, layer: int, input_size: int):
    """A one-layer float64 torch module holding layer ``layer`` of ``params``."""
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[mode]
    m = cls(input_size, H, bidirectional=bidirectional).double()
    state = {
        k.replace(f"_l{layer}", "_l0"): torch.tensor(np.asarray(v))
        for k, v in params.items()
        if f"_l{layer}" in k
    }
    m.load_state_dict(state, strict=True)
    return m


def _observed_mask(mode, bidirectional, key, x):
    """The between-layer keep mask jaxrnn drew for ``key``, read off the probe layer."""
    params = _params(mode, bidirectional) | _probe_layer(mode, bidirectional)
    out, _ = _fn(mode)(params, x, dropout=RATE, key=key)
    return np.asarray(out) != 0.0, np.asarray(out)


@pytest.mark.parametrize(("mode", "bidirectional"), CASES)
def test_dropout_between_layers_has_the_rate_the_scale_and_fresh_masks(mode, bidirectional):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(1), (T, B, I), jnp.float64)
        key = jax.random.key(2)
        keep, out = _observed_mask(mode, bidirectional, key, x)

        # layer 0's output, from torch, must have no zeros of its own
        layer0 = _torch_layer(mode, bidirectional, _params(mode, bidirectional), 0, I)
        with torch.no_grad():
            y0 = layer0(torch.tensor(np.asarray(x)))[0].numpy()
        assert np.all(y0 != 0.0)

        n = keep.size
        dropped = 1.0 - keep.mean()
        assert abs(dropped - RATE) < 5 * np.sqrt(RATE * (1 - RATE) / n), dropped
        same_as_next_step = (keep[1:] == keep[:-1]).mean()  # fresh per step: p² + (1-p)²
        assert abs(same_as_next_step - (RATE**2 + (1 - RATE) ** 2)) < 0.03
        # kept values are y0 / (1 - p): invert the probe and compare
        np.testing.assert_allclose(
            _inverse_probe(mode, out[keep]), y0[keep] / (1 - RATE), rtol=1e-9, atol=1e-12
        )

        again, _ = _observed_mask(mode, bidirectional, key, x)
        other, _ = _observed_mask(mode, bidirectional, jax.random.key(3), x)
        np.testing.assert_array_equal(again, keep)
        assert (other != keep).mean() > 0.2


@pytest.mark.parametrize(("mode", "bidirectional"), CASES)
def test_dropout_gradients_equal_torch_autograd_through_the_same_mask(mode, bidirectional):
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(1), (T, B, I), jnp.float64)
        key = jax.random.key(2)
        keep, _ = _observed_mask(mode, bidirectional, key, x)
        params = _params(mode, bidirectional) | {
            k: v
            for k, v in _params(mode, bidirectional, seed=5).items()
            if "_l1" in k  # ordinary layer-1 weights now
        }
        w = np.random.default_rng(0).standard_normal(keep.shape)

        def loss(p, xx):
            out, _ = _fn(mode)(p, xx, dropout=RATE, key=key)
            return jnp.sum(out * w)

        value, (gp, gx) = jax.value_and_grad(loss, argnums=(0, 1))(params, x)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves((gp, gx)))

        dirs = 2 if bidirectional else 1
        m0 = _torch_layer(mode, bidirectional, params, 0, I)
        m1 = _torch_layer(mode, bidirectional, params, 1, dirs * H)
        tx = torch.tensor(np.asarray(x), requires_grad=True)
        mid = m0(tx)[0] * torch.tensor(keep / (1 - RATE))
        ref = (m1(mid)[0] * torch.tensor(w)).sum()
        grads = torch.autograd.grad(ref, [*m0.parameters(), *m1.parameters(), tx])
        names = [k for k, _ in m0.named_parameters()]
        names += [k.replace("_l0", "_l1") for k, _ in m1.named_parameters()]
        want = dict(zip(names, grads[:-1], strict=True))
        np.testing.assert_allclose(float(value), float(ref), rtol=1e-12)
        assert want.keys() == gp.keys()
        for k, g in want.items():
            np.testing.assert_allclose(np.asarray(gp[k]), g.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(gx), grads[-1].numpy(), rtol=1e-10, atol=1e-12)


def test_linen_and_nnx_training_mode_drop_between_layers():
    x = jax.random.normal(jax.random.key(0), (T, B, I))
    model = jaxrnn.linen.GRU(H, num_layers=2, dropout=RATE, bidirectional=True)
    variables = model.init(jax.random.key(0), x, deterministic=True)
    ev = model.apply(variables, x, deterministic=True)[0]
    tr = lambda s: model.apply(  # noqa: E731
        variables, x, deterministic=False, rngs={"dropout": jax.random.key(s)}
    )[0]
    assert not np.allclose(tr(1), ev)
    np.testing.assert_array_equal(tr(1), tr(1))
    assert not np.allclose(tr(1), tr(2))

    layer = jaxrnn.nnx.LSTM(I, H, 2, dropout=RATE, rngs=nnx.Rngs(0))
    layer.eval()
    ev = layer(x)[0]
    layer.train()
    a, b = layer(x)[0], layer(x)[0]
    assert not np.allclose(a, ev) and not np.allclose(a, b)  # a fresh mask per call
    layer.eval()
    np.testing.assert_array_equal(layer(x)[0], ev)
