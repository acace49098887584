"""Streaming and the linear families at the layer level: chunks carried between calls equal one
call, stepping equals one call, kernels agree through stacking, bidirectional and lengths, and
every family works in functional, linen and nnx form."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxrnn
import jaxrnn.linen
import jaxrnn.nnx
from jaxrnn import families
from jaxrnn.params import Layout, init_params

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

T, B, I, H = 9, 3, 3, 4
VECTOR_FAMILIES = [n for n in families.names() if families.get(n).feature_ndim == 1]
LINEAR_FAMILIES = [n for n in families.names() if families.get(n).linear is not None]


def data(name: str, layers: int = 2, bidirectional: bool = False):
    params = init_params(
        jax.random.key(0), Layout(name, I, H, num_layers=layers, bidirectional=bidirectional)
    )
    x = jax.random.normal(jax.random.key(1), (T, B, I))
    return params, x


def close(a, b, tol=2e-5):
    chex.assert_trees_all_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", VECTOR_FAMILIES)
def test_chunks_carried_between_calls_equal_one_call_with_resets(name):
    params, x = data(name)
    resets = np.zeros((T, B), bool)
    resets[[2, 5, 6], [0, 1, 0]] = True  # one reset falls on a chunk border (t = 5)
    full, final = jaxrnn.layer(name, params, x, resets=resets)
    state, outs = None, []
    for lo, hi in ((0, 5), (5, 7), (7, T)):
        y, state = jaxrnn.layer(name, params, x[lo:hi], state, resets=resets[lo:hi])
        outs.append(y)
    close(jnp.concatenate(outs), full)
    close(state, final)


@pytest.mark.parametrize("name", VECTOR_FAMILIES)
def test_stepping_equals_one_call_and_compiles_once(name):
    params, x = data(name)
    full, final = jaxrnn.layer(name, params, x)
    traces = []

    @jax.jit
    def step(x_t, state, start):
        traces.append(1)
        return jaxrnn.step(name, params, x_t, state, resets=start)

    # The first step starts the sequence (resets): a no-op from the zero state, except for
    # the RG-LRU, whose segment start is a step of its own (Griffin's h = i * u).
    state = jaxrnn.init_state(name, params, B)
    ys = []
    for t in range(T):
        y, state = step(x[t], state, jnp.full((B,), t == 0))
        ys.append(y)
    close(jnp.stack(ys), full)
    close(state, final)
    assert len(traces) == 1  # one trace, then every step reuses the compiled call


def test_step_refuses_a_bidirectional_stack_and_a_sequence():
    params, x = data("gru", bidirectional=True)
    with pytest.raises(ValueError, match="a bidirectional layer needs the whole sequence"):
        jaxrnn.step("gru", params, x[0])
    params, x = data("gru")
    with pytest.raises(ValueError, match=r"step takes one time step x of shape \(B, features"):
        jaxrnn.step("gru", params, x)


def _stepped(step, x, resets, batch_first):
    state, ys = None, []
    for t in range(x.shape[0]):
        y, state = step(x[t], state, None if resets is None else jnp.asarray(resets[t]))
        ys.append(y)
    return jnp.stack(ys, axis=1 if batch_first else 0), state


@pytest.mark.parametrize("batch_first", [False, True])
def test_module_step_with_resets_equals_one_call(batch_first):
    """linen's and nnx's ``step`` take ``resets``: stepping equals one call over the
    sequence with the same resets."""
    x = jax.random.normal(jax.random.key(1), (T, B, I))
    resets = np.zeros((T, B), bool)
    resets[[3, 6], [0, 2]] = True
    xs, rs = (x.swapaxes(0, 1), resets.T) if batch_first else (x, resets)
    linen = jaxrnn.linen.GRU(H, num_layers=2, batch_first=batch_first)
    variables = linen.init(jax.random.key(0), xs)
    module = jaxrnn.nnx.GRU(I, H, 2, batch_first=batch_first, rngs=nnx.Rngs(0))
    runs = [
        (
            lambda x_t, s, r: linen.apply(variables, x_t, s, resets=r, method="step"),
            linen.apply(variables, xs, resets=rs),
        ),
        (lambda x_t, s, r: module.step(x_t, s, resets=r), module(xs, resets=rs)),
    ]
    for step, (full, final) in runs:
        got, state = _stepped(step, x, resets, batch_first)
        close(got, full)
        close(state, final)
        with pytest.raises(ValueError, match=r"resets of one step must have shape \(B,\)"):
            step(x[0], None, jnp.zeros((B, 1), bool))


def test_nnx_step_runs_with_the_modules_options():
    """nnx's ``step`` is a call on a one-step sequence, so it keeps every option of the module:
    with ``matmul_dtype=bfloat16`` it equals the bf16 call (same products, float32 rounding)
    and not the float32 one (bf16 operands move the output by ~1e-3)."""
    x = jax.random.normal(jax.random.key(1), (T, B, I))
    module = jaxrnn.nnx.GRU(I, H, 2, matmul_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    full, final = module(x)
    got, state = _stepped(lambda x_t, s, r: module.step(x_t, s), x, None, False)
    close(got, full, 1e-5)
    close(state, final, 1e-5)
    exact = jaxrnn.layer("gru", module.state_dict(), x)[0]
    assert float(jnp.max(jnp.abs(got - exact))) > 1e-4


@pytest.mark.parametrize("name", LINEAR_FAMILIES)
def test_linear_family_kernels_agree_through_a_bidirectional_stack(name):
    params, x = data(name, bidirectional=True)
    lengths = jnp.array([9, 4, 6])
    resets = np.zeros((T, B), bool)
    resets[[3, 2], [0, 2]] = True
    outs = {
        backend: jaxrnn.layer(name, params, x, lengths=lengths, resets=resets, backend=backend)
        for backend in ("parallel", "sequential", "scan")
    }
    close(outs["parallel"], outs["scan"])
    close(outs["sequential"], outs["scan"])
    grads = {
        backend: jax.grad(
            lambda p, b=backend: jnp.sum(
                jnp.abs(jaxrnn.layer(name, p, x, lengths=lengths, backend=b)[0]) ** 2
            )
        )(params)
        for backend in ("parallel", "sequential", "scan")
    }
    close(grads["parallel"], grads["scan"], 1e-4)
    close(grads["sequential"], grads["scan"], 1e-4)
    padded = np.arange(T)[:, None] >= np.asarray(lengths)[None]
    assert not np.any(np.asarray(outs["scan"][0])[padded])


@pytest.mark.parametrize("name", LINEAR_FAMILIES)
def test_linear_family_modules_agree_and_refuse_recurrent_dropout(name):
    cls = {"mingru": "MinGRU", "minlstm": "MinLSTM", "lru": "LRU", "rglru": "RGLRU"}[name]
    x = jax.random.normal(jax.random.key(0), (B, T, I))
    linen = getattr(jaxrnn.linen, cls)(H, num_layers=2, batch_first=True, dropout=0.2)
    variables = linen.init(jax.random.key(1), x, deterministic=True)
    want = jaxrnn.layer(name, variables["params"], x, batch_first=True)
    close(linen.apply(variables, x, deterministic=True), want, 1e-6)
    module = getattr(jaxrnn.nnx, cls)(I, H, 2, batch_first=True, dropout=0.2, rngs=nnx.Rngs(0))
    module.load_state_dict(variables["params"])
    module.eval()
    close(module(x), want, 1e-6)
    module.train()
    assert not np.allclose(module(x)[0], want[0])  # dropout between the two layers
    with pytest.raises(ValueError, match=f"the {name} family has no such recurrence"):
        jaxrnn.layer(name, variables["params"], x, key=jax.random.key(0), recurrent_dropout=0.1)


def test_lru_state_is_complex_and_its_shape_follows_state_size():
    params = init_params(jax.random.key(0), Layout("lru", I, H, options=(("state_size", 7),)))
    y, h_n = jaxrnn.lru(params, jnp.ones((T, B, I)))
    chex.assert_shape(y, (T, B, H))
    chex.assert_shape(h_n, (1, B, 7))
    assert jnp.iscomplexobj(h_n) and not jnp.iscomplexobj(y)
    with pytest.raises(TypeError, match=r"hx must be a floating-point array, got dtype int32"):
        jaxrnn.lru(params, jnp.ones((T, B, I)), jnp.zeros((1, B, 7), jnp.int32))
