"""JAX transforms (jit, grad, vmap) and dtypes (float32, float64, bfloat16, unbatched input)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import config, jax_fn, jax_forward, random_data, torch_forward, torch_module

from jaxrnn.interop import from_torch

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

torch = pytest.importorskip("torch")


def loss_of(cfg, lengths=None):
    fn = jax_fn(cfg)

    def loss(params, x, hx):
        out, state = fn(params, x, hx, lengths=lengths, batch_first=cfg.batch_first)
        h = state[0] if cfg.is_lstm else state
        return jnp.sum(jnp.sin(out)) + jnp.sum(h**2)

    return loss


@pytest.mark.parametrize("kind", ["lstm_proj"])
def test_jit_and_grad_compose(kind):
    cfg = config(kind, bidirectional=True)
    params = from_torch(torch_module(cfg))
    x, hx, lengths = random_data(cfg, np.random.default_rng(0), with_lengths=True)
    hx = tuple(map(jnp.asarray, hx)) if cfg.is_lstm else jnp.asarray(hx)

    def run(lengths):
        return jax.grad(loss_of(cfg, lengths), argnums=(0, 1, 2))(params, jnp.asarray(x), hx)

    eager = run(jnp.asarray(lengths))
    jitted = jax.jit(run)(jnp.asarray(lengths))  # lengths traced: the masks are data
    for e, j in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(e, j, rtol=1e-5, atol=1e-6)


class TestJitVariants(chex.TestCase):
    """The same call with and without jax.jit, each against torch."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_functional_with_lengths_matches_torch(self):
        cfg = config("lstm_proj", num_layers=2, bidirectional=True, batch_first=True)
        m = torch_module(cfg, seed=8)
        x, hx, lengths = random_data(cfg, np.random.default_rng(8), with_lengths=True)
        run = self.variant(jax_forward, static_argnums=0)
        got = run(cfg, from_torch(m), x, hx, jnp.asarray(lengths))
        want = torch_forward(m, cfg, x, hx, lengths)
        chex.assert_shape(got, [w.shape for w in want])
        chex.assert_type(got, jnp.float32)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-5)


def test_unroll_changes_nothing():
    cfg = config("gru", bidirectional=True)
    params = from_torch(torch_module(cfg))
    x, hx, lengths = random_data(cfg, np.random.default_rng(0), with_lengths=True)
    one = jax_forward(cfg, params, x, hx, lengths)
    three = jax_forward(cfg, params, x, hx, lengths, unroll=3)
    for a, b in zip(one, three, strict=True):
        if a is not None:
            np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm_proj", "gru"])
def test_vmap_of_unbatched_equals_batched(kind):
    """``vmap`` over the unbatched ``(T, I)`` API is the batched call (batch_first layout)."""
    cfg = config(kind, num_layers=2, bidirectional=True, batch_first=True)
    params = from_torch(torch_module(cfg))
    x, hx, _ = random_data(cfg, np.random.default_rng(1))
    fn = jax_fn(cfg)
    hx = tuple(map(jnp.asarray, hx)) if cfg.is_lstm else jnp.asarray(hx)
    state_axes = (1, 1) if cfg.is_lstm else 1
    vmapped = jax.vmap(lambda x, h: fn(params, x, h), in_axes=(0, state_axes),
                       out_axes=(0, state_axes))(jnp.asarray(x), hx)  # fmt: skip
    batched = fn(params, jnp.asarray(x), hx, batch_first=True)
    for v, b in zip(jax.tree.leaves(vmapped), jax.tree.leaves(batched), strict=True):
        np.testing.assert_allclose(v, b, atol=1e-6)


@pytest.mark.parametrize("kind", ["rnn_relu", "lstm_proj", "gru"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbf", "bf"])
def test_unbatched_input_matches_torch(kind, batch_first):
    """A 2-D ``(T, I)`` input (and ``(D*L, H)`` state) behaves as in torch, batch_first or not."""
    cfg = config(kind, num_layers=2, bidirectional=True, batch_first=batch_first)
    m = torch_module(cfg, seed=2)
    x, hx, _ = random_data(config(kind, num_layers=2, bidirectional=True),
                           np.random.default_rng(2), batch=1)  # fmt: skip
    x = x[:, 0]
    hx = tuple(s[:, 0] for s in hx) if cfg.is_lstm else hx[:, 0]
    for state in (hx, None):
        want = torch_forward(m, cfg, x, state, None)
        got = jax_forward(cfg, from_torch(m), x, state, None)
        for g, w in zip(got, want, strict=True):
            if w is not None:
                assert g.shape == w.shape
                np.testing.assert_allclose(g, w, atol=1e-5)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm_proj", "gru"])
def test_float64_matches_torch_float64(kind):
    cfg = config(kind, num_layers=2, bidirectional=True)
    m = torch_module(cfg, seed=3, dtype=torch.float64)
    x, hx, lengths = random_data(cfg, np.random.default_rng(3), with_lengths=True,
                                 dtype=np.float64)  # fmt: skip
    want = torch_forward(m, cfg, x, hx, lengths)
    with jax.enable_x64(True):
        got = jax_forward(cfg, from_torch(m), x, hx, lengths)
        for g, w in zip(got, want, strict=True):
            if w is not None:
                assert g.dtype == jnp.float64
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


def test_float64_gradients_match_torch_float64():
    cfg = config("lstm_proj", bidirectional=True)
    m = torch_module(cfg, seed=4, dtype=torch.float64)
    x, hx, lengths = random_data(cfg, np.random.default_rng(4), with_lengths=True,
                                 dtype=np.float64)  # fmt: skip
    tx = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.as_tensor(lengths),
                                                     enforce_sorted=False)  # fmt: skip
    out, (h, _) = m(packed, tuple(map(torch.from_numpy, hx)))
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=x.shape[0])
    (torch.sin(out).sum() + (h**2).sum()).backward()
    with jax.enable_x64(True):
        params = from_torch(m)
        grads, gx = jax.grad(loss_of(cfg, jnp.asarray(lengths)), argnums=(0, 1))(
            params, jnp.asarray(x), tuple(map(jnp.asarray, hx))
        )
        np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=0, atol=1e-12)
        for name, p in m.named_parameters():
            assert grads[name].dtype == jnp.float64
            np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm_proj", "gru"])
def test_bfloat16_runs_in_bfloat16(kind):
    """bf16 inputs and weights give bf16 outputs, within bf16 rounding of the float32 result
    computed from the same (bf16-representable) numbers."""
    cfg = config(kind, num_layers=2, bidirectional=True)
    params = from_torch(torch_module(cfg, seed=5, dtype=torch.bfloat16))
    x, hx, lengths = random_data(cfg, np.random.default_rng(5), with_lengths=True)
    to16 = lambda a: jnp.asarray(a, jnp.bfloat16)  # noqa: E731
    x16 = to16(x)
    hx16 = tuple(map(to16, hx)) if cfg.is_lstm else to16(hx)
    got = jax_forward(cfg, params, x16, hx16, lengths)
    f32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), (params, x16, hx16))
    want = jax_forward(cfg, *f32, lengths)
    for g, w in zip(got, want, strict=True):
        if w is not None:
            assert g.dtype == jnp.bfloat16
            np.testing.assert_allclose(np.asarray(g, np.float32), w, atol=4e-2)
            assert np.abs(np.asarray(g, np.float32) - w).mean() < 5e-3


def test_bfloat16_input_with_float32_weights_computes_in_float32():
    cfg = config("lstm", num_layers=2)
    params = from_torch(torch_module(cfg))
    x, _, lengths = random_data(cfg, np.random.default_rng(6), with_lengths=True)
    x16 = jnp.asarray(x, jnp.bfloat16)
    got = jax_forward(cfg, params, x16, None, lengths)
    want = jax_forward(cfg, params, jnp.asarray(x16, jnp.float32), None, lengths)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == jnp.float32
        np.testing.assert_allclose(g, w, atol=1e-6)
