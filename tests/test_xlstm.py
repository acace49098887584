"""sLSTM and mLSTM against the authors' code, on the same weights, in float32; and the
mLSTM's chunkwise form against its recurrent step with resets, lengths and several chunks.

References (the ``test`` extra pins them): ``xlstm`` 2.0.6's ``sLSTMLayer`` on its vanilla
PyTorch backend, and ``mlstm_kernels`` 2.0.6's PyTorch recurrent loop
(``torch.recurrent.mlstm_recurrent_sequence__native_fw``) and its JAX parallel and chunkwise
functions (``jax.parallel.native``, ``jax.chunkwise.native``). Its JAX recurrent module
imports ``jax_triton`` at import time, so the PyTorch loop stands in for it.

Tolerances. Outputs: ``1e-5`` absolute, the issue's target. Each output is a ratio of sums
of ``T = 64`` decayed terms of size ~1; float32 rounding (``2^-24 ≈ 6e-8``) grows at most
linearly with the terms summed and the steps carried, ``~64 * 6e-8 * |h| ≈ 4e-6`` for
``|h| <= 1``, inside ``1e-5``. Gradients: ``1e-4`` relative to the largest entry of each
gradient (a backward pass adds one more ``T``-step accumulation: ``~2 * 64 * 6e-8 ≈ 8e-6``,
with an order of magnitude left for the conditioning of ``c / n`` and the normalizer).
An injected error fails them: ``log f`` off by 1e-3 (in the sLSTM's pointwise step, or in the
chunkwise kernel's running sum) moved the outputs by 2.5e-3 (sLSTM), 4.6e-3 (mLSTM layer vs
JAX parallel) and 3.4e-3 (vs the PyTorch recurrent and chunkwise), checked when these tests
were written.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn.families import mlstm as mlstm_family
from jaxrnn.families import slstm as slstm_family
from jaxrnn.kernels import chunkwise
from jaxrnn.params import Layout, init_params, layer_params

torch = pytest.importorskip("torch")

T, B = 64, 3
OUT_ATOL = 1e-5
GRAD_RTOL = 1e-4


def rel(got, want) -> float:
    """``max |got - want| / max |want|``: the gradient error measure of the module doc."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def err(got, want) -> float:
    return float(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)).max())


# --- sLSTM ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def official_slstm():
    layer_mod = pytest.importorskip("xlstm.blocks.slstm.layer")
    h, heads = 16, 4
    config = layer_mod.sLSTMLayerConfig(
        embedding_dim=h, num_heads=heads, conv1d_kernel_size=0, backend="vanilla",
        dtype="float32", bias_init="standard", recurrent_weight_init="standard",
    )  # fmt: skip
    torch.manual_seed(0)
    layer = layer_mod.sLSTMLayer(config)
    with torch.no_grad():  # larger than the official init, so the gates saturate somewhere
        for p in layer.parameters():
            p.mul_(3.0)
    return layer, h, heads


def _slstm_torch(layer, x: np.ndarray, w: np.ndarray):
    """The official layer minus its group norm: outputs, final state, and gradients of
    ``sum(w * y) + sum(sin(state))`` w.r.t. the weights and ``x``."""
    layer.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    wx = torch.cat([layer.fgate(xt), layer.igate(xt), layer.zgate(xt), layer.ogate(xt)], -1)
    y, state = layer.slstm_cell(wx)  # y (B, NH, S, DH), state (4, B, H)
    y = y.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], -1)
    loss = (torch.tensor(w) * y).sum() + torch.sin(state).sum()
    loss.backward()
    grads = {n: p.grad.numpy().copy() for n, p in layer.named_parameters() if p.grad is not None}
    return y.detach().numpy(), state.detach().numpy(), grads, xt.grad.numpy()


def test_slstm_equals_the_official_vanilla_layer(official_slstm):
    layer, h, heads = official_slstm
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, h)).astype(np.float32)
    w = rng.normal(size=(B, T, h)).astype(np.float32)
    y_ref, state_ref, grads_ref, dx_ref = _slstm_torch(layer, x, w)
    params = slstm_family.from_xlstm(layer.state_dict())
    assert jaxrnn.params.layout_of("slstm", params).options == (("num_heads", heads),)

    def loss(p, x):
        y, state = jaxrnn.layer("slstm", p, x, batch_first=True)
        return (w * y).sum() + sum(jnp.sin(s).sum() for s in state), (y, state)

    with jax.default_matmul_precision("highest"):
        (_, (y, state)), (g, dx) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
            params, jnp.asarray(x)
        )
    assert err(y, y_ref) <= OUT_ATOL
    for s, s_ref in zip(state, state_ref, strict=True):  # (h, c, n, m)
        assert err(s[0], s_ref) <= OUT_ATOL * max(1.0, np.abs(s_ref).max())
    assert rel(dx, dx_ref) <= GRAD_RTOL
    assert rel(g["weight_hh_l0"], grads_ref["slstm_cell._recurrent_kernel_"]) <= GRAD_RTOL
    assert rel(g["bias_l0"], grads_ref["slstm_cell._bias_"]) <= GRAD_RTOL
    # the head-wise projections are the diagonal blocks of weight_ih (order f, i, z, o)
    dw = np.asarray(g["weight_ih_l0"]).reshape(4, heads, h // heads, heads, h // heads)
    for gate, name in enumerate(("fgate", "igate", "zgate", "ogate")):
        blocks = np.stack([dw[gate, k, :, k, :] for k in range(heads)])
        assert rel(blocks, grads_ref[f"{name}.weight"]) <= GRAD_RTOL, name


def test_slstm_weights_round_trip_to_the_official_layer(official_slstm):
    layer, _, _ = official_slstm
    params = slstm_family.from_xlstm(layer.state_dict())
    back = slstm_family.to_xlstm(params)
    own = {k: v.numpy() for k, v in layer.state_dict().items()}
    for name, value in back.items():
        np.testing.assert_array_equal(value, own[name])
    dense = dict(params, weight_ih_l0=params["weight_ih_l0"].at[0, -1].set(1.0))
    with pytest.raises(ValueError, match="block-diagonal"):
        slstm_family.to_xlstm(dense)


# --- mLSTM ---------------------------------------------------------------------------------

H_M, HEADS_M, I_M = 32, 4, 12


def _mlstm_setup(seed: int = 0):
    layout = Layout("mlstm", I_M, H_M, options=(("num_heads", HEADS_M),))
    # The default init: gate pre-activations of about ±1. Much wider ones make |nᵀq| cancel
    # far below exp(-m) for some steps, where h̃ is ill-conditioned in any float32 code
    # (measured: ×8 gates move float32 outputs by 0.8 from float64, the same in both codes);
    # the stabilizer at large gates is tested in float64 and at ±80 below.
    params = init_params(jax.random.key(seed), layout)
    x = jax.random.normal(jax.random.key(seed + 1), (T, B, I_M))
    return params, x


def _to_bhs(a):
    """Time-major ``(T, B, NH, ...)`` to the kernels' ``(B, NH, T, ...)``."""
    return jnp.moveaxis(a, 0, 2)


def _official_parallel(q, k, v, i, f):
    mod = pytest.importorskip("mlstm_kernels.jax.parallel.native")
    return mod.mlstm_parallel__native_autograd(q, k, v, i, f, eps=0.0)


@pytest.mark.parametrize("backend", ["chunkwise", "quadratic", "scan"])
def test_mlstm_equals_mlstm_kernels_jax_parallel(backend):
    """The whole layer on each backend against ``o ⊙ h̃`` with ``h̃`` from the official JAX
    parallel function on the same projections (``eps=0``: the paper's normalizer)."""
    params, x = _mlstm_setup()
    w = jax.random.normal(jax.random.key(7), (T, B, H_M))

    def ours(p, x):
        y, _ = jaxrnn.layer("mlstm", p, x, backend=backend)
        return (w * y).sum(), y

    def theirs(p, x):
        q, k, v, log_i, _, o = mlstm_family.projections(layer_params(p, 0, False), x)
        f = project_f(layer_params(p, 0, False), x)
        h = _official_parallel(*(_to_bhs(a) for a in (q, k, v, log_i, f)))
        y = o * jnp.moveaxis(h, 2, 0).reshape(o.shape)
        return (w * y).sum(), y

    with jax.default_matmul_precision("highest"):
        (_, y), g = jax.value_and_grad(ours, argnums=(0, 1), has_aux=True)(params, x)
        (_, y_ref), g_ref = jax.value_and_grad(theirs, argnums=(0, 1), has_aux=True)(params, x)
    assert err(y, y_ref) <= OUT_ATOL
    for name in g[0]:
        assert rel(g[0][name], g_ref[0][name]) <= GRAD_RTOL, name
    assert rel(g[1], g_ref[1]) <= GRAD_RTOL


def project_f(p, x):
    """The forget gate's pre-activation ``f̃`` (the official functions take it, not its log)."""
    heads = mlstm_family.num_heads(p)
    gates = x @ p["weight_if"].T + p["bias_if"]
    return gates[..., heads:]


def true_memory_loss(xp, c, n, m):
    """A loss on the final state that does not depend on the stabilizer: the paper's
    ``C = C_stored exp(m)`` and ``n`` (``m`` here stays within ±10, no overflow)."""
    scale = xp.exp(m)
    return xp.sin(c * scale[..., None, None]).sum() + xp.sin(n * scale[..., None]).sum()


def _official_torch(name: str):
    if name == "recurrent":
        mod = pytest.importorskip("mlstm_kernels.torch.recurrent")
        return mod.mlstm_recurrent_sequence__native_fw
    mod = pytest.importorskip("mlstm_kernels.torch.chunkwise.native")
    return lambda *a, **kw: mod.mlstm_chunkwise__native_autograd(*a, chunk_size=16, **kw)


@pytest.mark.parametrize("reference", ["recurrent", "chunkwise"])
def test_mlstm_equals_mlstm_kernels_torch_with_states(reference):
    """The chunkwise kernel against the PyTorch recurrent loop and chunkwise function, from a
    nonzero initial state, with the final ``(C, n, m)``: the recurrent loop stabilizes as
    this code does, so its states are equal as stored; the chunkwise function's ``m`` may
    differ, so there the true memory ``C exp(m)`` (and ``n exp(m)``) is compared."""
    official = _official_torch(reference)
    params, x = _mlstm_setup(1)
    p = layer_params(params, 0, False)
    keys = jax.random.split(jax.random.key(3), 3)
    d = H_M // HEADS_M
    c0 = jax.random.normal(keys[0], (B, HEADS_M, d, d))
    n0 = jax.random.normal(keys[1], (B, HEADS_M, d))
    m0 = jax.random.normal(keys[2], (B, HEADS_M))
    q, k, v, log_i, _, _ = mlstm_family.projections(p, x)
    f = project_f(p, x)
    w = np.asarray(jax.random.normal(jax.random.key(8), (T, B, HEADS_M, d)))

    def ours(q, k, v, log_i, f):
        final, h = chunkwise.mlstm_chunkwise(
            q, k, v, log_i, jax.nn.log_sigmoid(f), (c0, n0, m0), chunk_size=16
        )
        return (w * h).sum() + true_memory_loss(jnp, *final), (h, final)

    with jax.default_matmul_precision("highest"):
        (_, (h, final)), g = jax.value_and_grad(ours, argnums=(0, 1, 2, 3, 4), has_aux=True)(
            q, k, v, log_i, f
        )

    def t(a):
        return torch.tensor(np.asarray(a), requires_grad=True)

    tq, tk, tv, ti, tf = (t(_to_bhs(a)) for a in (q, k, v, log_i, f))
    m_init = torch.tensor(np.asarray(m0))
    h_ref, (c_ref, n_ref, m_ref) = official(
        tq, tk, tv, ti, tf, c_initial=torch.tensor(np.asarray(c0)),
        n_initial=torch.tensor(np.asarray(n0)),
        m_initial=m_init[..., None] if reference == "recurrent" else m_init,
        return_last_states=True, eps=0.0,
    )  # fmt: skip
    m_ref = m_ref.reshape(B, HEADS_M)
    loss = (torch.tensor(np.moveaxis(w, 0, 2)) * h_ref).sum()
    loss = loss + true_memory_loss(torch, c_ref, n_ref, m_ref)
    loss.backward()
    assert err(_to_bhs(h), h_ref.detach().numpy()) <= OUT_ATOL
    c, n, m = final
    c_ref, n_ref, m_ref = (a.detach().numpy() for a in (c_ref, n_ref, m_ref))
    if reference == "recurrent":
        assert err(m, m_ref) <= OUT_ATOL * max(1.0, np.abs(m_ref).max())
    scale = np.exp(np.asarray(m, np.float64) - m_ref)
    assert rel(c * scale[..., None, None], c_ref) <= GRAD_RTOL
    assert rel(n * scale[..., None], n_ref) <= GRAD_RTOL
    for got, want in zip(g, (tq, tk, tv, ti, tf), strict=True):
        assert rel(_to_bhs(got), want.grad.numpy()) <= GRAD_RTOL


# --- the chunkwise form itself -------------------------------------------------------------


def _recurrent(q, k, v, log_i, log_f, state, valid, restart, reset_state):
    def step(carry, inputs):
        q_t, k_t, v_t, i_t, f_t, valid_t, restart_t = inputs
        carry = jax.tree.map(
            lambda r, c: jnp.where(restart_t.reshape(-1, *(1,) * (c.ndim - 1)), r, c),
            reset_state, carry,
        )  # fmt: skip
        new, h = mlstm_family.recurrent_step(carry, q_t, k_t, v_t, i_t, f_t)
        new = jax.tree.map(
            lambda n, c: jnp.where(valid_t.reshape(-1, *(1,) * (c.ndim - 1)), n, c), new, carry
        )
        return new, h

    return jax.lax.scan(step, state, (q, k, v, log_i, log_f, valid, restart))


@pytest.mark.parametrize("chunk_size", [4, 6])
def test_chunkwise_equals_the_recurrent_step_with_resets_and_padding(chunk_size):
    """Several chunks, resets inside and on chunk edges, padding, a nonzero start state and a
    different reset state, exponential forget gates: equal to the step, float64."""
    with jax.enable_x64(True):
        steps, batch, heads, d = 20, 3, 2, 3
        ks = jax.random.split(jax.random.key(0), 9)
        q, k, v = (jax.random.normal(kk, (steps, batch, heads, d), jnp.float64) for kk in ks[:3])
        log_i = 3 * jax.random.normal(ks[3], (steps, batch, heads), jnp.float64)
        log_f = jax.random.normal(ks[4], (steps, batch, heads), jnp.float64)  # exp forget
        state = (
            jax.random.normal(ks[5], (batch, heads, d, d), jnp.float64),
            jax.random.normal(ks[6], (batch, heads, d), jnp.float64),
            jax.random.normal(ks[7], (batch, heads), jnp.float64),
        )
        reset_state = jax.tree.map(lambda s: 0.5 * s + 0.1, state)
        lengths = jnp.array([20, 13, 7])
        valid = jnp.arange(steps)[:, None] < lengths
        restart = np.zeros((steps, batch), bool)
        restart[[0, 5, 6, 10, 11, 12, 19], [1, 0, 2, 2, 0, 1, 0]] = True
        restart = jnp.asarray(restart) & valid
        args = (q, k, v, log_i, log_f, state)

        def ours(q, k, v, log_i, log_f, state):
            # _run: the kernels' entry, which pads T to a multiple of the chunk (6 here)
            final, h = chunkwise._run(
                q, k, v, log_i, log_f, state, reset_state, valid, restart, chunk_size
            )
            return final, jnp.where(valid[..., None, None], h, 0)

        def ref(q, k, v, log_i, log_f, state):
            final, h = _recurrent(q, k, v, log_i, log_f, state, valid, restart, reset_state)
            return final, jnp.where(valid[..., None, None], h, 0)

        got, want = ours(*args), ref(*args)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)

        def loss(f):
            def value(*a):
                final, h = f(*a)
                return jnp.sin(h).sum() + sum(jnp.cos(s).sum() for s in jax.tree.leaves(final))

            return jax.grad(value, argnums=tuple(range(6)))(*args)

        for a, b in zip(jax.tree.leaves(loss(ours)), jax.tree.leaves(loss(ref)), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-9)


def test_stabilizer_keeps_exp_finite_at_80():
    """Gate pre-activations of exactly ±80 (``exp(80) ≈ 5.5e34``; its square overflows
    float32): outputs and gradients stay finite on every kernel of both families.

    The gates read feature 0 (±80) with weight ±1; the sLSTM's ``z`` and ``o`` too, while the
    mLSTM's ``q, k, v, o`` read feature 1 (about 1). (With ``q`` and ``k`` of exactly equal
    magnitude ``|nᵀq|`` can cancel to 0 while ``ĩ = 80``, where the paper's normaliser has a
    true derivative of about ``e^80 |v||k|``, beyond float32 in any implementation.)
    """
    for name, backends in (("slstm", ["scan"]), ("mlstm", ["chunkwise", "quadratic", "scan"])):
        layout = Layout(name, 4, 8, options=(("num_heads", 2),))
        params = init_params(jax.random.key(0), layout)
        params = {
            n: (0.01 * p if n.startswith("weight_hh")  # R h adds at most 0.08
                else jnp.zeros_like(p).at[:, 1 if n[7:8] in "qkvo" and name == "mlstm" else 0]
                .set(jnp.sign(jax.random.normal(jax.random.key(len(n)), p.shape[:1])))
                if n.startswith("weight") else 0 * p)
            for n, p in params.items()
        }  # fmt: skip
        keys = jax.random.split(jax.random.key(1))
        x = jax.random.normal(keys[0], (8, 2, 4))
        x = x.at[..., 0].set(80.0 * jnp.sign(jax.random.normal(keys[1], (8, 2))))
        for backend in backends:

            def loss(p, x, name=name, backend=backend):
                return jaxrnn.layer(name, p, x, backend=backend)[0].sum()

            y, g = jax.value_and_grad(loss, argnums=(0, 1))(params, x)
            assert bool(jnp.isfinite(y)), (name, backend)
            assert all(bool(jnp.isfinite(a).all()) for a in jax.tree.leaves(g)), (name, backend)


def test_bad_heads_and_chunk_size():
    with pytest.raises(ValueError, match="num_heads=3 must divide hidden_size=8"):
        init_params(jax.random.key(0), Layout("slstm", 4, 8, options=(("num_heads", 3),)))
    with pytest.raises(ValueError, match="num_heads=3 must divide hidden_size=8"):
        init_params(jax.random.key(0), Layout("mlstm", 4, 8, options=(("num_heads", 3),)))
    with pytest.raises(ValueError, match="num_heads must be a positive integer"):
        init_params(jax.random.key(0), Layout("mlstm", 4, 8, options=(("num_heads", 0),)))
    q = jnp.ones((10, 1, 1, 2))
    g = jnp.zeros((10, 1, 1))
    with pytest.raises(ValueError, match="chunk_size=4 must divide the sequence length T=10"):
        chunkwise.mlstm_chunkwise(q, q, q, g, g, chunk_size=4)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        chunkwise.mlstm_chunkwise(q, q, q, g, g, chunk_size=0)


def test_streaming_steps_equal_the_full_pass():
    for name in ("slstm", "mlstm"):
        params = init_params(
            jax.random.key(0), Layout(name, 3, 8, num_layers=2, options=(("num_heads", 2),))
        )
        x = jax.random.normal(jax.random.key(1), (4, 2, 3))
        y, final = jaxrnn.layer(name, params, x)
        state = jaxrnn.init_state(name, params, batch=2)
        ys = []
        for t in range(4):
            y_t, state = jaxrnn.step(name, params, x[t], state)
            ys.append(y_t)
        np.testing.assert_allclose(jnp.stack(ys), y, rtol=1e-5, atol=1e-6)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(final), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_linen_and_nnx_modules_run_the_family():
    from flax import nnx

    x = jax.random.normal(jax.random.key(0), (5, 2, 3))
    for linen_cls, nnx_cls, name in (
        (jaxrnn.linen.SLSTM, jaxrnn.nnx.SLSTM, "slstm"),
        (jaxrnn.linen.MLSTM, jaxrnn.nnx.MLSTM, "mlstm"),
    ):
        module = linen_cls(8, num_heads=2, bidirectional=True)
        variables = module.init(jax.random.key(1), x)
        y, _ = module.apply(variables, x)
        np.testing.assert_array_equal(y, jaxrnn.layer(name, variables["params"], x)[0])
        model = nnx_cls(3, 8, num_heads=2, rngs=nnx.Rngs(0))
        params = model.state_dict()
        np.testing.assert_array_equal(model(x)[0], jaxrnn.layer(name, params, x)[0])
        assert jaxrnn.params.layout_of(name, params).options == (("num_heads", 2),)


@pytest.mark.slow
def test_xlstm_benchmark_runs(capsys):
    pytest.importorskip("mlstm_kernels")
    from benchmarks import xlstm

    xlstm.main(["--steps", "64", "--reps", "1", "--width", "8", "--heads", "2", "--batch", "2"])
    assert "mLSTM chunkwise (mlstm_kernels JAX native)" in capsys.readouterr().out
