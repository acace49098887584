"""The native oneDNN kernel through jaxrnn's own API: gradients against torch, what
``backend="auto"`` picks, and the fallback to the XLA kernels (plugin absent or disabled).

The plugin's own tests are ``tests/test_onednn.py``; the forward matrix is in
``tests/test_parity.py``. These skip when the plugin is not installed, except the fallback
test, which runs either way.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import config, jax_fn, onednn_runs, random_data, torch_module

from jaxrnn import families, kernels
from jaxrnn.interop import from_torch
from jaxrnn.kernels import rules

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

torch = pytest.importorskip("torch")
native = pytest.mark.skipif(
    not onednn_runs(), reason="jaxrnn_onednn is absent, or this is not a CPU (it runs there only)"
)


@native
@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru"])
def test_native_gradients_match_torch(kind):
    cfg = config(kind, num_layers=2, bidirectional=True, hidden_size=6)
    m = torch_module(cfg, seed=1)
    x, hx, _ = random_data(cfg, np.random.default_rng(1))
    w = np.random.default_rng(2).standard_normal((7, 4, 2 * cfg.out_size)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_(True)
    thx = tuple(map(torch.from_numpy, hx)) if cfg.is_lstm else torch.from_numpy(hx)
    out, _ = m(tx, thx)
    (torch.from_numpy(w) * out).sum().backward()
    want = {k: p.grad.numpy() for k, p in m.named_parameters()}
    jhx = tuple(map(jnp.asarray, hx)) if cfg.is_lstm else jnp.asarray(hx)

    def loss(p, x):
        return jnp.sum(w * jax_fn(cfg)(p, x, jhx, backend="onednn")[0])

    grads, dx = jax.grad(loss, argnums=(0, 1))(from_torch(m), jnp.asarray(x))
    for name, g in want.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-5)


@native
def test_auto_takes_native_only_where_it_was_measured_faster(monkeypatch):
    monkeypatch.setattr(rules, "cpu_vendor", lambda: "intel")
    lstm, gru, rnn = (families.get(n) for n in ("lstm", "gru", "rnn_tanh"))
    big = kernels.Call(dtype=jnp.float32, batch=32, hidden=256)
    assert kernels.select(lstm, big).name == "onednn"
    assert kernels.select(gru, big).name == "fused"  # mixed measurements: XLA keeps them
    assert kernels.select(rnn, big).name == "fused"
    assert kernels.select(gru, big, "onednn").name == "onednn"  # forcing still runs it
    assert kernels.select(lstm, big._replace(batch=8, hidden=64)).name == "fused"
    assert kernels.select(lstm, big._replace(batch=8, hidden=128)).name == "onednn"
    for need in ("lengths", "resets", "recurrent_dropout", "forward_mode"):
        assert kernels.select(lstm, big._replace(**{need: True})).name != "onednn", need
    assert kernels.select(lstm, big._replace(dtype=jnp.bfloat16)).name == "fused"
    with pytest.raises(ValueError, match="cannot run this call: lengths run on the XLA"):
        kernels.select(lstm, big._replace(lengths=True), "onednn")


@native
@pytest.mark.parametrize("vendor", ["amd", "arm", "unknown"])
def test_auto_leaves_native_to_a_wisdom_table_off_intel(monkeypatch, vendor):
    """On an AMD EPYC the oneDNN LSTM lost 10-31% to the fused loop (BENCHMARKS.md,
    "Autotuning"): the rules take it on Intel CPUs only; naming it still runs it."""
    monkeypatch.setattr(rules, "cpu_vendor", lambda: vendor)
    lstm = families.get("lstm")
    big = kernels.Call(dtype=jnp.float32, batch=32, hidden=256)
    assert kernels.select(lstm, big).name == "fused"
    assert kernels.select(lstm, big, "onednn").name == "onednn"


def test_disabled_or_absent_plugin_falls_back_to_xla():
    code = (
        "import jax, jax.numpy as jnp, jaxrnn\n"
        "from jaxrnn.params import Layout, init_params\n"
        "assert 'onednn' not in jaxrnn.kernels.names()\n"
        "p = init_params(jax.random.key(0), Layout('lstm', 3, 128))\n"
        "y, _ = jaxrnn.lstm(p, jnp.ones((4, 32, 3)))\n"
        "try:\n"
        "    jaxrnn.lstm(p, jnp.ones((4, 32, 3)), backend='onednn')\n"
        "except ValueError as e:\n"
        "    assert 'needs the jaxrnn_onednn plugin' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('forcing onednn without the plugin did not raise')\n"
        "print('fallback ok')\n"
    )
    env = {**os.environ, "JAXRNN_DISABLE_ONEDNN": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "fallback ok" in done.stdout
