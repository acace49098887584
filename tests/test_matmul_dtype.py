"""``matmul_dtype=jnp.bfloat16``: mixed-precision matmuls on the fused loops, forward and backward.

Two references. torch in float64 on the same weights: a bf16 product carries ~3 significant
digits, so outputs and gradients must agree to bf16 accuracy (``TOL``) and, to show the
option took effect, must *not* agree to float32 accuracy (``EXACT``), which the float32 path
does (``tests/test_parity.py``, ``tests/test_gradients.py``). And ``jax.grad`` of the cells
written out with bf16 matmuls that round as jaxrnn's backward does: the hand-written backward
must equal it up to float32 summation order.
"""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import KINDS, config, jax_forward, random_data, torch_module, torch_run
from flax import nnx

import jaxrnn
import jaxrnn.linen
import jaxrnn.nnx
from jaxrnn import cells, families, kernels
from jaxrnn.interop import from_torch

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

torch = pytest.importorskip("torch")

TOL = 1e-2  # norm of the error relative to the reference's (at least 1)
EXACT = 1e-5

CASES = list(itertools.product(KINDS, (False, True), (False, True)))


def relative(got, want) -> float:
    """``|got - want| / max(1, |want|)`` in the Frobenius norm."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.linalg.norm(got - want) / max(1.0, np.linalg.norm(want)))


def loss_weights(cfg, out_shape, rng):
    return [rng.standard_normal(out_shape), rng.standard_normal((cfg.num_states, 4, cfg.out_size))]


@pytest.mark.parametrize(("kind", "bidir", "lengths"), CASES)
def test_bf16_matmuls_match_float64_torch_to_bf16_accuracy(kind, bidir, lengths):
    cfg = config(kind, input_size=8, hidden_size=16, num_layers=2, bidirectional=bidir)
    rng = np.random.default_rng(7)
    m64 = torch_module(cfg, seed=3, dtype=torch.float64)
    params = jax.tree.map(lambda a: a.astype(jnp.float32), from_torch(torch_module(cfg, seed=3)))
    x, _, lens = random_data(cfg, rng, steps=12, with_state=False, with_lengths=lengths)
    w_out, w_h = loss_weights(cfg, (12, 4, cfg.out_size * (2 if bidir else 1)), rng)

    # torch float64: outputs and gradients of a weighted loss of output and h_n
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    out, state = torch_run(m64, cfg, tx, None, lens)
    h = state[0] if cfg.is_lstm else state
    m64.zero_grad()
    ((torch.from_numpy(w_out) * out).sum() + (torch.from_numpy(w_h) * h).sum()).backward()
    want_grads = {name: p.grad.numpy() for name, p in m64.named_parameters()}

    def loss(p, x):
        out, h, _ = jax_forward(cfg, p, x, None, lens, matmul_dtype=jnp.bfloat16)
        return (w_out * out).sum() + (w_h * h).sum(), out

    (_, got_out), (grads, dx) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        params, jnp.asarray(x)
    )
    chex.assert_type(got_out, jnp.float32)
    out_err = relative(got_out, out.detach().numpy())
    assert EXACT < out_err < TOL, out_err
    grad_err = max(relative(grads[k], want_grads[k]) for k in want_grads)
    if kind == "rnn_relu":
        # A bf16 rounding that moves a pre-activation across 0 switches relu's derivative
        # between 0 and 1; such flips put relu gradients 2-20% off, for autodiff of the same
        # bf16 computation too (see the test below), so only the smooth kinds get TOL here.
        assert EXACT < grad_err < 0.3, grad_err
    else:
        assert EXACT < grad_err < TOL, grad_err
        assert relative(dx, tx.grad.numpy()) < TOL
    assert all(grads[k].dtype == jnp.float32 for k in grads)


@jax.custom_vjp
def _mm(a, w):
    """``a @ w.T`` on bf16 operands with float32 sums; its backward casts like jaxrnn's: the
    incoming gradient is rounded to bf16 before each product, sums stay float32."""
    bf = jnp.bfloat16
    return jnp.matmul(a.astype(bf), w.T.astype(bf), preferred_element_type=a.dtype)


def _mm_fwd(a, w):
    return _mm(a, w), (a, w)


def _mm_bwd(res, g):
    a, w = res
    bf = jnp.bfloat16
    da = jnp.matmul(g.astype(bf), w.astype(bf), preferred_element_type=a.dtype)
    dw = jnp.matmul(g.T.astype(bf), a.astype(bf), preferred_element_type=w.dtype)
    return da, dw


_mm.defvjp(_mm_fwd, _mm_bwd)


def bf16_cell(kind):
    """The cell of ``kind`` written out with bf16 matmuls: a reference for autodiff."""

    def rnn(p, h, x):
        z = _mm(x, p["weight_ih"]) + p["bias_ih"] + _mm(h, p["weight_hh"]) + p["bias_hh"]
        h = jnp.tanh(z) if kind == "rnn_tanh" else jax.nn.relu(z)
        return h, h

    def lstm(p, carry, x):
        h, c = carry
        z = _mm(x, p["weight_ih"]) + p["bias_ih"] + _mm(h, p["weight_hh"]) + p["bias_hh"]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        h = _mm(h, p["weight_hr"]) if "weight_hr" in p else h
        return (h, c), h

    def gru(p, h, x):
        ir, iu, in_ = jnp.split(_mm(x, p["weight_ih"]) + p["bias_ih"], 3, axis=-1)
        hr, hu, hn = jnp.split(_mm(h, p["weight_hh"]) + p["bias_hh"], 3, axis=-1)
        r, u = jax.nn.sigmoid(ir + hr), jax.nn.sigmoid(iu + hu)
        n = jnp.tanh(in_ + r * hn)
        return n + u * (h - n), n + u * (h - n)

    return {"rnn_tanh": rnn, "rnn_relu": rnn, "lstm": lstm, "lstm_proj": lstm, "gru": gru}[kind]


FAMILY = {"rnn_tanh": "rnn_tanh", "rnn_relu": "rnn_relu", "lstm": "lstm", "lstm_proj": "lstm",
          "gru": "gru"}  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_bf16_backward_equals_autodiff_of_the_bf16_cell(kind, reverse):
    """The hand-written backward with bf16 matmuls vs jax.grad of the same bf16 math (the
    reference matmul rounds its incoming gradient to bf16 as jaxrnn's backward does)."""
    cfg = config(kind, input_size=8, hidden_size=16)
    p = {k.removesuffix("_l0"): v for k, v in from_torch(torch_module(cfg, seed=5)).items()}
    rng = np.random.default_rng(11)
    x = jnp.asarray(rng.standard_normal((10, 4, 8)), jnp.float32)
    h = jnp.asarray(rng.standard_normal((4, cfg.out_size)), jnp.float32)
    carry = (h, jnp.asarray(rng.standard_normal((4, 16)), jnp.float32)) if cfg.is_lstm else h
    lengths = jnp.array([10, 3, 7, 1])
    valid = jnp.arange(10)[:, None] < lengths[None]
    w = jnp.asarray(rng.standard_normal((10, 4, cfg.out_size)), jnp.float32)
    family = families.get(FAMILY[kind])

    def fused(matmul_dtype):
        kernel = kernels.select(family, kernels.Call(matmul_dtype=matmul_dtype), "fused")
        return lambda p, x, c: kernels.run(
            kernel, family, p, x, c, valid=valid, reverse=reverse, matmul_dtype=matmul_dtype
        )

    def reference(p, x, c):
        return jaxrnn.scan.scan(bf16_cell(kind), p, x, c, lengths=lengths, reverse=reverse)

    def grad(run):
        def loss(p, x, carry):
            final, ys = run(p, x, carry)
            return (w * ys).sum() + sum(f.sum() for f in jax.tree.leaves(final))

        return jax.grad(loss, argnums=(0, 1, 2))(p, x, carry)

    want = grad(reference)
    got = grad(fused(jnp.dtype(jnp.bfloat16)))
    exact = grad(fused(None))
    got, want, exact = (jax.tree.leaves(t) for t in (got, want, exact))
    # The same bf16 roundings in the same places: equal up to float32 summation order (~1e-7),
    # where a wrong formula would be off by O(1). GRU forms its gate gradients in another
    # order than autodiff (and `h - n` cancels), so a few land on the other side of a bf16
    # rounding: ~1e-4.
    tol = 1e-3 if kind == "gru" else 1e-5
    assert max(relative(g, r) for g, r in zip(got, want, strict=True)) < tol
    assert max(relative(g, e) for g, e in zip(got, exact, strict=True)) > EXACT


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_bf16_path_is_the_same_eager_and_jitted(jit):
    cfg = config("lstm", input_size=5, hidden_size=6)
    params = from_torch(torch_module(cfg))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((7, 3, 5)), jnp.float32)

    def run(p, x):
        return jaxrnn.lstm(p, x, matmul_dtype=jnp.bfloat16)[0]

    got = (jax.jit(run) if jit else run)(params, x)
    chex.assert_trees_all_close(got, jaxrnn.lstm(params, x, matmul_dtype="bfloat16")[0])
    assert relative(got, jaxrnn.lstm(params, x)[0]) > EXACT


def test_bf16_inputs_stay_bf16():
    """bf16 params and input with bf16 matmuls: the result keeps the caller's dtype."""
    params = jax.tree.map(
        lambda a: a.astype(jnp.bfloat16), from_torch(torch_module(config("gru", hidden_size=6)))
    )
    x = jnp.ones((7, 3, 5), jnp.bfloat16)
    out, h = jaxrnn.gru(params, x, matmul_dtype=jnp.bfloat16)
    chex.assert_type([out, h], jnp.bfloat16)


def test_modules_pass_matmul_dtype_through():
    x = jnp.asarray(np.random.default_rng(1).standard_normal((6, 3, 5)), jnp.float32)
    model = jaxrnn.nnx.LSTM(5, 7, num_layers=2, matmul_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    want = jaxrnn.lstm(model.state_dict(), x, matmul_dtype=jnp.bfloat16)[0]
    assert np.array_equal(model(x)[0], want)
    assert not np.array_equal(want, jaxrnn.lstm(model.state_dict(), x)[0])

    layer = jaxrnn.linen.GRU(7, matmul_dtype=jnp.bfloat16)
    variables = layer.init(jax.random.key(0), x)
    want = jaxrnn.gru(variables["params"], x, matmul_dtype=jnp.bfloat16)[0]
    assert np.array_equal(layer.apply(variables, x)[0], want)


def test_remat_keeps_the_matmul_dtype():
    params = from_torch(torch_module(config("lstm", hidden_size=6)))
    x = jnp.asarray(np.random.default_rng(2).standard_normal((9, 3, 5)), jnp.float32)

    def loss(p, remat):
        return jaxrnn.lstm(p, x, matmul_dtype=jnp.bfloat16, remat=remat)[0].sum()

    chex.assert_trees_all_close(
        jax.grad(loss)(params, 4), jax.grad(loss)(params, None), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda p, x: jaxrnn.stack(
                lambda p, c, x: cells.gru_cell(p, c, x),
                [[p]],
                x,
                [[jnp.zeros((3, 6))]],
                matmul_dtype=jnp.bfloat16,
            ),
            ValueError,
            r"matmul_dtype runs on the fused kernel only",
        ),
        (
            lambda p, x: jaxrnn.gru(p, x, matmul_dtype=jnp.int32),
            TypeError,
            r"matmul_dtype must be a floating-point dtype, got int32",
        ),
        (
            lambda p, x: jaxrnn.gru(p, x, matmul_dtype="half-ish"),
            TypeError,
            r"matmul_dtype must be a dtype such as jnp.bfloat16, got 'half-ish'",
        ),
        (
            lambda p, x: jaxrnn.gru(p, x, matmul_dtype=jnp.bfloat16, backend="scan"),
            ValueError,
            r"backend='scan' cannot run this call: matmul_dtype runs on the fused kernel only",
        ),
    ],
    ids=["user cell", "integer dtype", "not a dtype", "scan kernel"],
)
def test_bad_matmul_dtype_is_named(call, error, message):
    params = from_torch(torch_module(config("gru", hidden_size=6)))
    with pytest.raises(error, match=message):
        call(params, jnp.ones((7, 3, 5)))
