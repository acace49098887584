"""The oneDNN plugin (``plugins/onednn``, ``jaxrnn_onednn``) against torch.nn and jaxrnn's XLA path.

Skipped when the plugin is not installed, unless ``JAXRNN_REQUIRE_ONEDNN=1`` (CI after
building it), which turns a missing or broken plugin into a failure. Parity: outputs, final
states and every gradient (parameters, input, h0, c0) vs ``torch.nn`` to float32 rounding,
over kind x {1, 2} layers x uni/bidirectional x bias x given/zero initial state, and
gradients vs autodiff of ``jaxrnn.functional``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    KINDS,
    ON_CPU,
    config,
    jax_forward,
    max_abs_diff,
    random_data,
    record,
    torch_module,
)

from jaxrnn.interop import from_torch

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

if not ON_CPU:  # before JAXRNN_REQUIRE_ONEDNN: a GPU machine runs the XLA kernels, by design
    pytest.skip(
        f"the oneDNN plugin runs on the CPU only; JAX runs on {jax.default_backend()} here",
        allow_module_level=True,
    )
if os.environ.get("JAXRNN_REQUIRE_ONEDNN", "") in ("", "0"):
    jaxrnn_onednn = pytest.importorskip("jaxrnn_onednn")
else:
    import jaxrnn_onednn

torch = pytest.importorskip("torch")

TOL = 1e-5
MODE = {
    "lstm": "lstm",
    "lstm_proj": "lstm",
    "gru": "gru",
    "rnn_tanh": "rnn_tanh",
    "rnn_relu": "rnn_relu",
}

needs_native = pytest.mark.skipif(
    not jaxrnn_onednn.available(), reason=f"jaxrnn_onednn: {jaxrnn_onednn.load_error()}"
)


def test_plugin_really_loaded():
    """A silent fallback must not pass: the library loaded and jit lowers to its custom call."""
    if os.environ.get(jaxrnn_onednn.DISABLE_ENV, "") not in ("", "0"):
        pytest.skip("disabled by JAXRNN_DISABLE_ONEDNN")
    assert jaxrnn_onednn.available(), jaxrnn_onednn.load_error()
    assert jaxrnn_onednn.onednn_version().startswith("3.")
    params = from_torch(torch_module(config("lstm")))
    x = jnp.ones((3, 2, 5), jnp.float32)
    fwd = jax.jit(lambda p, x: jaxrnn_onednn.rnn("lstm", p, x)[0])
    assert "jaxrnn_onednn_forward_inference" in fwd.lower(params, x).as_text()
    step = jax.jit(jax.grad(lambda p, x: jaxrnn_onednn.rnn("lstm", p, x)[0].sum()))
    text = step.lower(params, x).as_text()
    assert "jaxrnn_onednn_forward_training" in text and "jaxrnn_onednn_backward" in text
    step(params, x)
    assert jaxrnn_onednn.cache_info()["size"] >= 1


def test_disable_env_var():
    code = "import jaxrnn_onednn as j; print(j.available(), j.load_error())"
    env = dict(os.environ, JAXRNN_DISABLE_ONEDNN="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("False") and "JAXRNN_DISABLE_ONEDNN" in out


@needs_native
def test_cache_is_bounded():
    code = (
        "import jax.numpy as jnp, jaxrnn_onednn as j\n"
        "p = [{'weight_ih': jnp.ones((4, 2)), 'weight_hh': jnp.ones((4, 4))}]\n"
        "for t in range(1, 6): j.rnn_layer('rnn_tanh', p, jnp.ones((t, 1, 2)))\n"
        "print(j.cache_info())"
    )
    env = dict(os.environ, JAXRNN_ONEDNN_CACHE_SIZE="2")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "'size': 2, 'capacity': 2" in out


def _torch_run(m, cfg, x, hx):
    """Output, final states and all gradients of ``loss`` under torch, as numpy."""
    xt = torch.from_numpy(x).requires_grad_()
    states = []
    if hx is not None:
        states = [torch.from_numpy(a).requires_grad_() for a in (hx if cfg.is_lstm else [hx])]
    thx = None if hx is None else (tuple(states) if cfg.is_lstm else states[0])
    out, state = m(xt, thx)
    h, c = state if cfg.is_lstm else (state, None)
    _loss(out, h, c).backward()
    grads = {k: p.grad.numpy() for k, p in m.named_parameters()}
    grads["x"] = xt.grad.numpy()
    for name, s in zip(("h0", "c0"), states, strict=False):
        grads[name] = s.grad.numpy()
    c = None if c is None else c.detach().numpy()
    return (out.detach().numpy(), h.detach().numpy(), c), grads


def _loss(out, h, c):
    # Weights every output with a different function so no gradient path is trivial.
    mod = torch if isinstance(out, torch.Tensor) else jnp
    loss = mod.sin(out).sum() + mod.cos(h).sum()
    return loss if c is None else loss + (c * c).sum()


def _native(cfg, params, x, hx):
    jhx = None if hx is None else (tuple(map(jnp.asarray, hx)) if cfg.is_lstm else hx)
    out, state = jaxrnn_onednn.rnn(MODE[cfg.kind], params, x, jhx)
    h, c = state if cfg.is_lstm else (state, None)
    return out, h, c


def _native_grads(cfg, params, x, hx, run=_native):
    def loss(params, x, hx):
        return _loss(*run(cfg, params, x, hx))

    gp, gx, ghx = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=())(params, x, hx)
    grads = dict(gp)
    grads["x"] = gx
    if hx is not None:
        for name, g in zip(("h0", "c0"), ghx if cfg.is_lstm else [ghx], strict=False):
            grads[name] = g
    return grads


CASES = list(itertools.product(KINDS, (1, 2), (False, True), (True, False), (True, False)))


@needs_native
@pytest.mark.parametrize(
    "kind,layers,bidir,bias,state",
    CASES,
    ids=["-".join(map(str, c)) for c in CASES],
)
def test_parity_with_torch(kind, layers, bidir, bias, state):
    cfg = config(kind, num_layers=layers, bidirectional=bidir, bias=bias)
    m = torch_module(cfg)
    x, hx, _ = random_data(cfg, np.random.default_rng(1), with_state=state)
    want, want_grads = _torch_run(m, cfg, x, hx)
    params = from_torch(m)
    got = jax.jit(lambda p, x, hx: _native(cfg, p, x, hx))(params, jnp.asarray(x), hx)
    case = f"onednn {kind} L{layers} bi={bidir} bias={bias} state={state}"
    for w, g in zip(want, got, strict=True):
        if w is None:
            assert g is None
            continue
        err = max_abs_diff(g, w)
        record("forward", err, case)
        assert err < TOL, case
    grads = _native_grads(cfg, params, jnp.asarray(x), hx)
    assert set(grads) == set(want_grads)
    for name, w in want_grads.items():
        err = max_abs_diff(grads[name], w)
        record("gradient", err, f"{case} d{name}")
        assert err < TOL * max(1.0, float(np.abs(w).max())), (case, name, err)


@needs_native
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidir", [False, True])
def test_gradients_match_xla_path(kind, bidir):
    cfg = config(kind, num_layers=2, bidirectional=bidir)
    x, hx, _ = random_data(cfg, np.random.default_rng(2))
    params = from_torch(torch_module(cfg))
    xla = _native_grads(cfg, params, jnp.asarray(x), hx, run=lambda *a: jax_forward(*a, None))
    native = _native_grads(cfg, params, jnp.asarray(x), hx)
    for name, g in xla.items():
        err = max_abs_diff(native[name], g)
        assert err < TOL * max(1.0, float(np.abs(g).max())), (kind, name, err)


@needs_native
def test_vmap_runs_sequentially_and_matches():
    cfg = config("lstm", bidirectional=True)
    params = from_torch(torch_module(cfg))
    xs = jnp.asarray(np.random.default_rng(3).standard_normal((3, 4, 2, 5)), jnp.float32)

    def f(p, x):
        return jaxrnn_onednn.rnn("lstm", p, x)[0]

    batched = jax.jit(jax.vmap(f, in_axes=(None, 0)))(params, xs)
    for k in range(xs.shape[0]):
        assert max_abs_diff(batched[k], f(params, xs[k])) < 1e-6
    g = jax.grad(lambda p: jax.vmap(f, in_axes=(None, 0))(p, xs).sum())(params)
    g_loop = jax.grad(lambda p: sum(f(p, xs[k]).sum() for k in range(xs.shape[0])))(params)
    for name in g:
        assert max_abs_diff(g[name], g_loop[name]) < 1e-5


@needs_native
def test_checkpoint_and_batch_first():
    cfg = config("gru", num_layers=2)
    params = from_torch(torch_module(cfg))
    x = jnp.asarray(np.random.default_rng(4).standard_normal((6, 3, 5)), jnp.float32)

    def loss(p, x):
        return jaxrnn_onednn.rnn("gru", p, x)[0].sum()

    g = jax.grad(loss)(params, x)
    g_remat = jax.grad(jax.checkpoint(loss))(params, x)
    for name in g:
        assert max_abs_diff(g[name], g_remat[name]) == 0.0
    out_bf, _ = jaxrnn_onednn.rnn("gru", params, jnp.swapaxes(x, 0, 1), batch_first=True)
    out, _ = jaxrnn_onednn.rnn("gru", params, x)
    assert max_abs_diff(jnp.swapaxes(out_bf, 0, 1), out) == 0.0


@needs_native
def test_bad_input_is_rejected():
    p = {"weight_ih": jnp.ones((8, 3)), "weight_hh": jnp.ones((8, 2))}
    x = jnp.ones((4, 2, 3))
    with pytest.raises(ValueError, match="mode"):
        jaxrnn_onednn.rnn_layer("lstmx", [p], x)
    with pytest.raises(TypeError, match="float32"):
        jaxrnn_onednn.rnn_layer("lstm", [p], x.astype(jnp.float16))
    with pytest.raises(ValueError, match=r"\(T, B, I\)"):
        jaxrnn_onednn.rnn_layer("lstm", [p], x[0])
    with pytest.raises(ValueError, match="weight_ih"):
        jaxrnn_onednn.rnn_layer("lstm", [{**p, "weight_ih": jnp.ones((8, 4))}], x)
    with pytest.raises(ValueError, match="h0"):
        jaxrnn_onednn.rnn_layer("lstm", [p], x, jnp.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="c0"):
        jaxrnn_onednn.rnn_layer("gru", [{**p, "weight_ih": jnp.ones((6, 3)),
                                          "weight_hh": jnp.ones((6, 2))}], x, None, x)  # fmt: skip
    with pytest.raises(ValueError, match="bidirectional"):
        jaxrnn_onednn.rnn_layer("lstm", [p], x, bidirectional=True)
    with pytest.raises(ValueError, match="unknown parameter"):
        jaxrnn_onednn.rnn("lstm", {"weight_ih_l0": p["weight_ih"], "bogus": 1}, x)
    with pytest.raises(ValueError, match=r"h0 must be \(D\*L"):
        jaxrnn_onednn.rnn("lstm", {f"{k}_l0": v for k, v in p.items()}, x,
                          (jnp.zeros((2, 2, 2)), jnp.zeros((2, 2, 2))))  # fmt: skip
    with pytest.raises(TypeError, match="pair"):
        jaxrnn_onednn.rnn("lstm", {f"{k}_l0": v for k, v in p.items()}, x, jnp.zeros((1, 2, 2)))


@needs_native
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_parity_at_a_threaded_shape(kind):
    """Large enough per step that oneDNN runs its OpenMP team in inference and training for
    every kind (below 64 / 24 MFLOP per step and direction the plugin uses one thread).

    The custom call runs on the calling thread, whose OpenMP team size conftest's
    ``torch.set_num_threads(1)`` set to 1 (one runtime serves both); raise it meanwhile.
    """
    cfg = config(kind, input_size=64, hidden_size=256, num_layers=2, bidirectional=True)
    m = torch_module(cfg)
    x, hx, _ = random_data(cfg, np.random.default_rng(5), steps=6, batch=256)
    want, want_grads = _torch_run(m, cfg, x, hx)
    params = from_torch(m)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = jax.jit(lambda p, x, hx: _native(cfg, p, x, hx))(params, jnp.asarray(x), hx)
        grads = _native_grads(cfg, params, jnp.asarray(x), hx)
    finally:
        torch.set_num_threads(before)
    for w, g in zip(want, got, strict=True):
        if w is not None:
            assert max_abs_diff(g, w) < TOL
    for name, w in want_grads.items():
        err = max_abs_diff(grads[name], w)
        assert err < TOL * max(1.0, float(np.abs(w).max())), (kind, name, err)
