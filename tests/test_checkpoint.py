"""Checkpoints: a resumed run continues exactly like an uninterrupted one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("orbax.checkpoint")

import jaxrnn
from jaxrnn.params import Layout, init_params
from jaxrnn.training import (
    make_train_step,
    optimizer,
    restore_checkpoint,
    save_checkpoint,
)


def _setup():
    params = init_params(jax.random.key(0), Layout("lstm", 3, 8))
    opt = optimizer(1e-2)

    def loss_fn(p, batch, key):
        x, y = batch
        out, _ = jaxrnn.lstm(p, x, dropout=0.0)
        # key-dependent noise, so the restored PRNG key matters too
        noise = 1e-3 * jax.random.normal(key, out.shape)
        return jnp.mean((out + noise - y) ** 2), None

    def batch(i):
        k = jax.random.fold_in(jax.random.key(1), i)
        kx, ky = jax.random.split(k)
        return jax.random.normal(kx, (5, 4, 3)), jax.random.normal(ky, (5, 4, 8))

    return params, opt, make_train_step(loss_fn, opt), batch


def _run(state, step_fn, batch, start, stop):
    params, opt_state, key = state["params"], state["opt_state"], state["key"]
    losses = []
    for i in range(start, stop):
        key, sub = jax.random.split(key)
        params, opt_state, loss, _ = step_fn(params, opt_state, batch(i), sub)
        losses.append(float(loss))
    return {"params": params, "opt_state": opt_state, "key": key}, losses


def test_resume_gives_the_same_next_loss(tmp_path):
    params, opt, step_fn, batch = _setup()
    fresh = {"params": params, "opt_state": opt.init(params), "key": jax.random.key(7)}
    assert restore_checkpoint(tmp_path / "ckpt", fresh) is None

    state, _ = _run(fresh, step_fn, batch, 0, 3)
    save_checkpoint(tmp_path / "ckpt", 3, state)
    _, uninterrupted = _run(state, step_fn, batch, 3, 5)

    restored, step = restore_checkpoint(tmp_path / "ckpt", fresh)
    assert step == 3
    jax.tree.map(np.testing.assert_array_equal, restored["params"], state["params"])
    np.testing.assert_array_equal(
        jax.random.key_data(restored["key"]), jax.random.key_data(state["key"])
    )
    _, resumed = _run(restored, step_fn, batch, step, 5)
    assert resumed == uninterrupted
    # The optimizer state matters: restarting Adam from scratch gives a different next loss.
    _, cold = _run({**restored, "opt_state": opt.init(params)}, step_fn, batch, step, 5)
    assert cold[1] != uninterrupted[1]


def test_keeps_the_newest_and_restores_a_given_step(tmp_path):
    tree = {"w": jnp.zeros(3)}
    for s in range(5):
        save_checkpoint(tmp_path, s, {"w": jnp.full(3, float(s))}, keep=2)
    restored, step = restore_checkpoint(tmp_path, tree)
    assert step == 4
    np.testing.assert_array_equal(restored["w"], np.full(3, 4.0))
    restored, step = restore_checkpoint(tmp_path, tree, step=3)
    np.testing.assert_array_equal(restored["w"], np.full(3, 3.0))
    with pytest.raises(ValueError, match=r"no checkpoint for step 0 .* found \[3, 4\]"):
        restore_checkpoint(tmp_path, tree, step=0)
    with pytest.raises(ValueError, match="step must be a non-negative int, got -1"):
        save_checkpoint(tmp_path, -1, tree)
