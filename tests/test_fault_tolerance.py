"""Training that survives faults: the non-finite step guard and checkpoints under SIGKILL.

Measured (CPU): the exploding ReLU RNN below skips 6 of 12 steps (exactly the steps whose
loss is non-finite) and keeps finite parameters; without the guard the parameters are NaN
after the first such step. A save SIGKILLed at any of three points (temporary directory just
made, all files written but not renamed, just renamed) leaves the newest finalized checkpoint
restorable (step 3, or step 6 once its rename happened: orbax's tmp-dir + atomic-rename protocol
holds, and the next save replaces the stale tmp dir), and training resumed from it equals
uninterrupted training bit for bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxrnn
import jaxrnn.nnx
from jaxrnn.training import (
    make_train_step,
    optimizer,
    restore_checkpoint,
    skip_nonfinite_steps,
    skipped_steps,
)

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

ROOT = Path(__file__).resolve().parents[1]


def _exploding_setup():
    """A ReLU Elman RNN with ``W_hh = 3 I``: a 90-step batch overflows float32, a 6-step one
    does not. Batches alternate, so every other step has an inf/NaN loss and gradients."""
    params = jaxrnn.nnx.RNN(2, 4, rngs=nnx.Rngs(0)).state_dict()
    params["weight_hh_l0"] = 3.0 * jnp.eye(4)
    params["weight_ih_l0"] = jnp.abs(params["weight_ih_l0"])
    params["bias_ih_l0"] = jnp.abs(params["bias_ih_l0"])

    def loss_fn(p, batch, key):
        out, _ = jaxrnn.rnn(p, batch, nonlinearity="relu")
        return jnp.mean(out[-1] ** 2), None

    def batch(i: int):
        steps = 90 if i % 2 else 6
        return jnp.abs(jax.random.normal(jax.random.key(i), (steps, 3, 2)))

    return params, loss_fn, batch


def _finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


def test_exploding_rnn_keeps_finite_params_with_guard():
    params, loss_fn, batch = _exploding_setup()
    opt = optimizer(1e-7, max_grad_norm=None, algorithm="sgd", skip_nonfinite=True)
    step = make_train_step(loss_fn, opt)
    opt_state, key, bad = opt.init(params), jax.random.key(0), 0
    for i in range(12):
        before = params
        params, opt_state, loss, _ = step(params, opt_state, batch(i), key)
        if not jnp.isfinite(loss):
            bad += 1
            jax.tree.map(np.testing.assert_array_equal, params, before)  # skipped: unchanged
        assert _finite(params), f"non-finite parameters after step {i}"
    assert bad == 6
    assert int(skipped_steps(opt_state)) == bad

    # the same run without the guard is ruined by its first overflowing step
    plain = optimizer(1e-7, max_grad_norm=None, algorithm="sgd")
    p = _exploding_setup()[0]
    p, _, loss, _ = make_train_step(loss_fn, plain)(p, plain.init(p), batch(1), key)
    assert not jnp.isfinite(loss) and not _finite(p)


def test_guard_skips_nonfinite_loss_with_finite_gradients():
    params, _, batch = _exploding_setup()

    def loss_fn(p, x, key):  # an inf that no gradient sees
        out, _ = jaxrnn.rnn(p, x)
        return jnp.mean(out**2) + jax.lax.stop_gradient(jnp.where(key > 0, -jnp.inf, 0.0)), None

    opt = skip_nonfinite_steps(optax.sgd(1e-2))
    opt_state = opt.init(params)
    new, opt_state, loss, _ = make_train_step(loss_fn, opt)(params, opt_state, batch(0), 1.0)
    assert loss == -jnp.inf
    jax.tree.map(np.testing.assert_array_equal, new, params)
    new, opt_state, loss, _ = make_train_step(loss_fn, opt)(params, opt_state, batch(0), 0.0)
    assert jnp.isfinite(loss) and not np.array_equal(new["weight_hh_l0"], params["weight_hh_l0"])
    assert int(skipped_steps(opt_state)) == 1


def test_guard_changes_nothing_on_finite_steps():
    params, loss_fn, batch = _exploding_setup()
    x = batch(0)
    key = jax.random.key(0)
    guarded, plain = optimizer(1e-2, skip_nonfinite=True), optimizer(1e-2)
    pg, sg, pp, sp = params, guarded.init(params), params, plain.init(params)
    for _ in range(3):
        pg, sg, _, _ = make_train_step(loss_fn, guarded)(pg, sg, x, key)
        pp, sp, _, _ = make_train_step(loss_fn, plain)(pp, sp, x, key)
    # equal up to float32 rounding (the guard's select changes XLA's fusion, not the math)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), pg, pp)
    assert int(skipped_steps(sg)) == 0
    with pytest.raises(ValueError, match="no non-finite guard"):
        skipped_steps(sp)


def _plain(tree):
    """Typed PRNG keys as their raw data, so trees compare with array_equal."""
    is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def _assert_bitwise(a, b) -> None:
    jax.tree.map(np.testing.assert_array_equal, _plain(a), _plain(b))


@pytest.mark.parametrize(
    "kill_at", [pytest.param("mkdir", marks=pytest.mark.slow), "commit", "renamed"]
)
def test_sigkill_during_save_keeps_checkpoint_and_resume_is_bitwise(tmp_path, kill_at):
    pytest.importorskip("orbax.checkpoint")
    sys.path.insert(0, str(Path(__file__).parent))
    from _fault_train import setup, train

    directory = tmp_path / "ckpt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "_fault_train.py"), str(directory), kill_at],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "saving step 6" in proc.stdout and "saved step 6" not in proc.stdout

    fresh, step_fn, batch = setup()
    restored = restore_checkpoint(directory, fresh)
    assert restored is not None
    state, step = restored
    assert step == (6 if kill_at == "renamed" else 3)  # the rename is the commit point

    uninterrupted = train(fresh, step_fn, batch, 0, step)
    _assert_bitwise(state, uninterrupted)  # the other process's training, bit for bit
    resumed = train(state, step_fn, batch, step, 9)
    _assert_bitwise(resumed, train(uninterrupted, step_fn, batch, step, 9))
