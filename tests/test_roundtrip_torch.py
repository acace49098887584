"""Export to PyTorch: jaxrnn-born weights → ``to_torch`` → ``load_state_dict(strict=True)``.

For functional params (:func:`jaxrnn.params.init_params`), linen params (``model.init``) and
an nnx module's ``state_dict()``, the loaded ``torch.nn`` module reproduces jaxrnn's outputs
and final states (float32, 1e-5) on a packed, unsorted batch with an initial state, and the
weights come back from torch bit for bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    KINDS,
    config,
    jax_forward,
    max_abs_diff,
    random_data,
    record,
    torch_forward,
    torch_module,
)
from flax import nnx

import jaxrnn.linen
import jaxrnn.nnx
from jaxrnn.interop import from_torch, to_torch
from jaxrnn.params import Layout, init_params

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

torch = pytest.importorskip("torch")

TOL = 1e-5


def _layout(cfg) -> Layout:
    mode = "rnn" if cfg.kind.startswith("rnn") else "lstm" if cfg.is_lstm else "gru"
    return Layout(
        mode, cfg.input_size, cfg.hidden_size, cfg.num_layers, cfg.bias, cfg.bidirectional,
        cfg.proj_size,
    )  # fmt: skip


def _linen_params(cfg, x):
    common = dict(
        num_layers=cfg.num_layers,
        bias=cfg.bias,
        batch_first=cfg.batch_first,
        bidirectional=cfg.bidirectional,
    )
    if cfg.kind.startswith("rnn"):
        model = jaxrnn.linen.RNN(cfg.hidden_size, nonlinearity=cfg.kind[4:], **common)
    elif cfg.is_lstm:
        model = jaxrnn.linen.LSTM(cfg.hidden_size, proj_size=cfg.proj_size, **common)
    else:
        model = jaxrnn.linen.GRU(cfg.hidden_size, **common)
    return model.init(jax.random.key(3), jnp.asarray(x))["params"]


def _nnx_state_dict(cfg):
    args = (cfg.input_size, cfg.hidden_size, cfg.num_layers)
    kw = dict(bias=cfg.bias, batch_first=cfg.batch_first, bidirectional=cfg.bidirectional)
    if cfg.kind.startswith("rnn"):
        layer = jaxrnn.nnx.RNN(*args, nonlinearity=cfg.kind[4:], **kw, rngs=nnx.Rngs(4))
    elif cfg.is_lstm:
        layer = jaxrnn.nnx.LSTM(*args, proj_size=cfg.proj_size, **kw, rngs=nnx.Rngs(4))
    else:
        layer = jaxrnn.nnx.GRU(*args, **kw, rngs=nnx.Rngs(4))
    return layer.state_dict()


@pytest.mark.parametrize("source", ["functional", "linen", "nnx"])
@pytest.mark.parametrize("kind", KINDS)
def test_jaxrnn_weights_load_strictly_into_torch_and_give_the_same_outputs(kind, source):
    cfg = config(kind, num_layers=2, bidirectional=True, batch_first=kind == "gru")
    x, hx, lengths = random_data(cfg, np.random.default_rng(0), with_lengths=True)
    if source == "functional":
        params = init_params(jax.random.key(2), _layout(cfg))
    elif source == "linen":
        params = _linen_params(cfg, x)
    else:
        params = _nnx_state_dict(cfg)

    m = torch_module(cfg, seed=99)  # different weights until the load
    result = m.load_state_dict(to_torch(params), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    jax.tree.map(np.testing.assert_array_equal, from_torch(m), dict(params))

    want = torch_forward(m, cfg, x, hx, lengths)
    got = jax_forward(cfg, params, x, hx, lengths)
    for name, a, b in zip(("output", "h_n", "c_n"), got, want, strict=True):
        if b is None:
            assert a is None
            continue
        err = max_abs_diff(a, b)
        record("forward", err, f"to_torch {source} {kind} {name}")
        assert err <= TOL, (name, err)


def test_to_torch_keeps_low_precision_dtypes_for_a_strict_load():
    cfg = config("lstm_proj", num_layers=2, bidirectional=True)
    for jdtype, tdtype in [(jnp.bfloat16, torch.bfloat16), (jnp.float16, torch.float16)]:
        params = init_params(jax.random.key(0), _layout(cfg), dtype=jdtype)
        m = torch_module(cfg, dtype=tdtype)
        m.load_state_dict(to_torch(params), strict=True)
        assert all(p.dtype == tdtype for p in m.parameters())
        jax.tree.map(np.testing.assert_array_equal, from_torch(m), params)
