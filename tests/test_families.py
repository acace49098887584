"""Resets against torch, backends, forward-mode autodiff, checks under jit and nnx attributes.

What every registered family gets (its maths against a float64 reference, linen and nnx
modules, resets, interop) is tested in ``tests/test_registry.py``, with no family named.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import config, random_data, torch_forward, torch_module
from flax import nnx
from jax.experimental import checkify

import jaxrnn
import jaxrnn.linen
import jaxrnn.nnx
from jaxrnn import families, kernels
from jaxrnn.interop import from_torch
from jaxrnn.params import Layout, init_params

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

T, B, I, H = 6, 3, 3, 4


def test_layernorm_lstm_gradients_match_finite_differences():
    with jax.enable_x64(True):
        params = init_params(jax.random.key(0), Layout("layernorm_lstm", I, H), dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(1), (T, B, I), jnp.float64)

        def loss(p):
            return jnp.sum(jnp.sin(jaxrnn.layernorm_lstm(p, x)[0]))

        grads = jax.grad(loss)(params)
        for name in ("ln_hh_weight_l0", "weight_ih_l0", "ln_cell_bias_l0"):
            e = jnp.zeros_like(params[name]).ravel().at[1].set(1e-6).reshape(params[name].shape)
            fd = (
                loss({**params, name: params[name] + e}) - loss({**params, name: params[name] - e})
            ) / 2e-6
            np.testing.assert_allclose(grads[name].ravel()[1], fd, rtol=1e-6)


# --- resets ---------------------------------------------------------------------------------

EPISODES = [3, 4, 2]  # one batch row holds these three episodes back to back


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_resets_equal_running_each_episode_separately_in_torch(kind, bidirectional):
    cfg = config(kind, num_layers=2, bidirectional=bidirectional)
    m = torch_module(cfg, seed=3)
    params = from_torch(m)
    steps = sum(EPISODES)
    # Resets restart from zeros; hx=None makes every episode start there.
    x, _, _ = random_data(cfg, np.random.default_rng(0), steps=steps, batch=2, with_state=False)
    resets = np.zeros((steps, 2), bool)
    resets[np.cumsum(EPISODES)[:-1], 0] = True  # row 0: three episodes; row 1: one
    lengths = np.array([steps, steps - 2])  # row 1 also has padding
    fn = {"rnn_tanh": jaxrnn.rnn, "lstm": jaxrnn.lstm, "gru": jaxrnn.gru}[kind]
    out, state = fn(params, jnp.asarray(x), resets=resets, lengths=lengths)
    start = 0
    for n in EPISODES:  # row 0, episode by episode, each from zeros
        sl = slice(start, start + n)
        want_out, _want_h, _want_c = torch_forward(m, cfg, x[sl, :1], None, None)
        np.testing.assert_allclose(out[sl, :1], want_out, rtol=1e-5, atol=2e-6)
        start += n
    got_h = state[0] if cfg.is_lstm else state
    # The final state: forward directions end the last episode; reverse ones the first.
    last_h = torch_forward(m, cfg, x[-EPISODES[-1] :, :1], None, None)[1]
    first_h = torch_forward(m, cfg, x[: EPISODES[0], :1], None, None)[1]
    d = 2 if bidirectional else 1
    for k in range(cfg.num_layers * d):
        ref = first_h if k % d == 1 else last_h
        np.testing.assert_allclose(got_h[k, :1], ref[k], rtol=1e-5, atol=2e-6)
    # Row 1 has no resets: the plain packed result.
    want_out = torch_forward(m, cfg, x[:, 1:], None, np.array([steps - 2]))[0]
    np.testing.assert_allclose(out[:, 1:], want_out, rtol=1e-5, atol=2e-6)


def test_resets_follow_batch_first_and_unbatched_input():
    params = init_params(jax.random.key(0), Layout("gru", I, H))
    x = jax.random.normal(jax.random.key(1), (T, I))
    resets = np.zeros(T, bool)
    resets[3] = True
    out, _ = jaxrnn.gru(params, x, resets=resets)
    np.testing.assert_allclose(out[3:], jaxrnn.gru(params, x[3:])[0], rtol=1e-5, atol=1e-6)
    xb = jnp.stack([x, x])
    out_bf, _ = jaxrnn.gru(params, xb, resets=np.stack([resets, resets]), batch_first=True)
    np.testing.assert_allclose(out_bf[1], out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("resets", "error", "message"),
    [
        (np.zeros((T, 2), bool), ValueError, r"resets must have shape \(T, B\) = \(6, 3\)"),
        (np.zeros((T, B), np.int32), TypeError, r"resets must be a bool array, got dtype int32"),
    ],
)
def test_bad_resets_are_named(resets, error, message):
    params = init_params(jax.random.key(0), Layout("lstm", I, H))
    with pytest.raises(error, match=message):
        jaxrnn.lstm(params, jnp.ones((T, B, I)), resets=resets)


# --- backends -----------------------------------------------------------------------------


def test_auto_takes_the_fastest_kernel_that_runs_the_call():
    lstm = families.get("lstm")
    assert kernels.select(lstm, kernels.Call()).name == "fused"
    assert kernels.select(lstm, kernels.Call(recurrent_dropout=True)).name == "fused"
    assert kernels.select(lstm, kernels.Call(resets=True)).name == "scan"
    assert kernels.select(lstm, kernels.Call(forward_mode=True)).name == "scan"
    assert kernels.select(families.get("convlstm"), kernels.Call()).name == "scan"


def test_sequential_kernel_refuses_forward_mode_with_the_reason():
    mingru = families.get("mingru")
    call = kernels.Call(forward_mode=True)
    assert kernels.select(mingru, call).name != "sequential"
    with pytest.raises(ValueError, match="reverse-mode only"):
        kernels.choose(mingru, call, backend="sequential")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda p, x: jaxrnn.layer("layernorm_lstm", p, x, backend="fused"),
            r"the layernorm_lstm family does not offer backend='fused'; it offers \['scan'\]",
        ),
        (
            lambda p, x: jaxrnn.lstm(
                init_params(jax.random.key(0), Layout("lstm", I, H)),
                x,
                resets=np.zeros((T, B), bool),
                backend="fused",
            ),
            r"backend='fused' cannot run this call: resets run on the scan kernel",
        ),
        (
            lambda p, x: jaxrnn.layer("layernorm_lstm", p, x, backend="tpu_pallas"),
            r"backend must be 'auto' or one of \[.*'fused'.*'scan'.*\], got 'tpu_pallas'",
        ),
    ],
    ids=["not offered", "cannot run", "unknown"],
)
def test_forcing_a_backend_that_cannot_run_says_why(call, message):
    params = init_params(jax.random.key(0), Layout("layernorm_lstm", I, H))
    with pytest.raises(ValueError, match=message):
        call(params, jnp.ones((T, B, I)))


def test_forced_backends_agree():
    params = init_params(jax.random.key(0), Layout("gru", I, H, num_layers=2, bidirectional=True))
    x = jax.random.normal(jax.random.key(1), (T, B, I))
    lengths = jnp.array([6, 2, 5])
    fused = jaxrnn.gru(params, x, lengths=lengths, backend="fused")
    scan = jaxrnn.gru(params, x, lengths=lengths, backend="scan")
    chex.assert_trees_all_close(fused, scan, rtol=1e-5, atol=1e-6)


def test_variational_dropout_keeps_the_fused_kernel_and_bf16_matmuls():
    params = init_params(jax.random.key(0), Layout("lstm", I, H, num_layers=2))
    x = jax.random.normal(jax.random.key(1), (T, B, I))
    kw = dict(key=jax.random.key(2), recurrent_dropout=0.3, input_dropout=0.2)
    fused = jaxrnn.lstm(params, x, backend="fused", **kw)
    scan = jaxrnn.lstm(params, x, backend="scan", **kw)
    chex.assert_trees_all_close(fused, scan, rtol=1e-5, atol=1e-6)
    bf16 = jaxrnn.lstm(params, x, matmul_dtype=jnp.bfloat16, **kw)
    chex.assert_trees_all_close(bf16, fused, rtol=3e-2, atol=3e-2)


# --- forward-mode autodiff ------------------------------------------------------------------


# the linear families: "auto" leaves the sequential kernel (hand-written backward) under jvp
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru", "layernorm_lstm", "mingru", "lru"])
def test_jvp_jacfwd_and_hessian_match_finite_differences(name):
    with jax.enable_x64(True):
        params = init_params(jax.random.key(0), Layout(name, 2, 3), dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(1), (4, 2, 2), jnp.float64)

        def f(x):
            return jaxrnn.layer(name, params, x, lengths=jnp.array([4, 3]))[0]

        v = jax.random.normal(jax.random.key(2), x.shape, jnp.float64)
        _, tangent = jax.jvp(f, (x,), (v,))
        fd = (f(x + 1e-6 * v) - f(x - 1e-6 * v)) / 2e-6
        np.testing.assert_allclose(tangent, fd, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(
            jnp.tensordot(jax.jacfwd(f)(x), v, axes=3), fd, rtol=1e-6, atol=1e-9
        )

        def loss(x):
            return jnp.sum(f(x) ** 2)

        hess = jax.hessian(loss)(x)
        g = jax.grad(loss)
        fd_h = (g(x + 1e-5 * v) - g(x - 1e-5 * v)) / 2e-5
        np.testing.assert_allclose(jnp.tensordot(hess, v, axes=3), fd_h, rtol=1e-5, atol=1e-8)


# --- checks that survive jit ----------------------------------------------------------------


def test_lengths_out_of_range_are_reported_by_checkify_and_clamped_without():
    params = init_params(jax.random.key(0), Layout("gru", I, H))
    x = jax.random.normal(jax.random.key(1), (T, B, I))
    f = jax.jit(lambda lengths: jaxrnn.gru(params, x, lengths=lengths)[0])
    err, _ = checkify.checkify(f, errors=checkify.user_checks)(jnp.array([0, 3, 9]))
    with pytest.raises(checkify.JaxRuntimeError, match=r"lengths must lie in \[1, T\] = \[1, 6\]"):
        err.throw()
    err, _ = checkify.checkify(f, errors=checkify.user_checks)(jnp.array([1, 3, 6]))
    err.throw()  # in range: no error
    clamped = jaxrnn.gru(params, x, lengths=jnp.array([1, 3, 6]))[0]
    np.testing.assert_array_equal(f(jnp.array([0, 3, 9])), clamped)


# --- nnx attributes may change after construction, as in PyTorch ----------------------------


def test_nnx_dropout_can_be_switched_on_after_construction():
    m = jaxrnn.nnx.RNN(I, H, 2, rngs=nnx.Rngs(0))
    x = jnp.ones((T, B, I))
    plain = m(x)[0]
    m.train()
    m.dropout = 0.5
    dropped = m(x)[0]
    assert not np.allclose(dropped, plain)
    m.eval()
    np.testing.assert_array_equal(m(x)[0], plain)
    m.train()
    m.dropout = 1.0  # as PyTorch: every value between layers is dropped
    top = m(x)[0]
    want = jnp.tanh(m.state_dict()["bias_ih_l1"] + m.state_dict()["bias_hh_l1"])
    np.testing.assert_allclose(top[0], jnp.broadcast_to(want, (B, H)), rtol=1e-6)
