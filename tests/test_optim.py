"""The default optimizer chain and the jitted train step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxrnn
from jaxrnn.params import Layout, init_params
from jaxrnn.training import make_train_step, optimizer

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")


def _exploding_elman():
    # A relu Elman RNN whose recurrent weights sit just past the edge of stability: the
    # initial loss is small, but the first gradients are large enough to throw SGD off.
    params = init_params(jax.random.key(0), Layout("rnn_tanh", 4, 16))
    params["weight_hh_l0"] = params["weight_hh_l0"] * 2 * np.sqrt(3)
    x = jax.random.normal(jax.random.key(1), (30, 8, 4))
    y = jax.random.normal(jax.random.key(2), (8, 16))

    def loss_fn(p, batch, key):
        x, y = batch
        _, h = jaxrnn.rnn(p, x, nonlinearity="relu")
        return jnp.mean((h[0] - y) ** 2), {"h_norm": jnp.linalg.norm(h)}

    return params, (x, y), loss_fn


def _train(max_grad_norm, steps=40):
    params, batch, loss_fn = _exploding_elman()
    opt = optimizer(0.1, max_grad_norm=max_grad_norm, algorithm="sgd")
    step = make_train_step(loss_fn, opt)
    state = opt.init(params)
    losses = []
    for _ in range(steps):
        params, state, loss, _ = step(params, state, batch, None)
        losses.append(float(loss))
    return np.array(losses)


def test_clipping_tames_an_exploding_elman_rnn():
    clipped = _train(max_grad_norm=1.0)
    unclipped = _train(max_grad_norm=None)
    assert np.all(np.isfinite(clipped))
    assert clipped[-1] < 0.7 * clipped[0]
    # Without clipping the same run blows up: NaN/inf, or a loss many times the initial one.
    assert not np.all(np.isfinite(unclipped)) or unclipped.max() > 1e6 * unclipped[0]


def test_default_chain_is_clip_then_adam():
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
    grads = jax.tree.map(lambda p: 10.0 * jnp.cos(p), params)
    ref = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(3e-3))
    got_u, _ = optimizer(3e-3, max_grad_norm=0.5).update(grads, optimizer(3e-3).init(params))
    want_u, _ = ref.update(grads, ref.init(params), params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got_u, want_u)


def test_sgd_update_is_the_clipped_gradient():
    grads = {"a": jnp.array([3.0, 4.0])}  # norm 5
    opt = optimizer(0.1, max_grad_norm=1.0, algorithm="sgd")
    updates, _ = opt.update(grads, opt.init(grads))
    np.testing.assert_allclose(updates["a"], -0.1 * np.array([3.0, 4.0]) / 5.0, rtol=1e-6)


def test_weight_decay_is_adamw():
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.5])}
    opt = optimizer(1e-2, max_grad_norm=None, weight_decay=0.1)
    ref = optax.adamw(1e-2, weight_decay=0.1)
    got, _ = opt.update(grads, opt.init(params), params)
    want, _ = ref.update(grads, ref.init(params), params)
    np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6)


def test_train_step_matches_a_manual_step():
    params, batch, loss_fn = _exploding_elman()
    params["weight_hh_l0"] = params["weight_hh_l0"] / 4  # stable, so values are ordinary
    opt = optimizer(1e-2)
    state = opt.init(params)
    new_params, _, loss, aux = make_train_step(loss_fn, opt)(params, state, batch, None)

    (want_loss, want_aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, None)
    updates, _ = opt.update(grads, state, params)
    want_params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    np.testing.assert_allclose(aux["h_norm"], want_aux["h_norm"], rtol=1e-6)
    for k in params:
        np.testing.assert_allclose(new_params[k], want_params[k], rtol=1e-5, atol=1e-7)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="max_grad_norm must be positive"):
        optimizer(max_grad_norm=0.0)
    with pytest.raises(ValueError, match="algorithm must be 'adam' or 'sgd', got 'rmsprop'"):
        optimizer(algorithm="rmsprop")
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        optimizer(weight_decay=-1.0)
    with pytest.raises(TypeError, match=r"optimizer must be an optax\.GradientTransformation"):
        make_train_step(lambda p, b, k: (0.0, None), "adam")


def test_donating_step_gives_the_same_result():
    def loss_fn(p, batch, key):
        return jnp.sum((p["w"] * batch) ** 2), None

    opt = optimizer(0.1)
    params = {"w": jnp.arange(3.0)}
    want = make_train_step(loss_fn, opt)(params, opt.init(params), jnp.ones(3), None)
    fresh = {"w": jnp.arange(3.0)}
    got = make_train_step(loss_fn, opt, donate=True)(fresh, opt.init(fresh), jnp.ones(3), None)
    jax.tree.map(np.testing.assert_array_equal, got, want)
