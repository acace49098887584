"""Data parallel: 20 steps on 4 (forced CPU) devices give the losses of 1 device."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn.training import data_mesh, replicate, shard_batch

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    import jaxrnn
    from jaxrnn.params import Layout, init_params
    from jaxrnn.sequences import masked_mean
    from jaxrnn.training import data_mesh, make_train_step, optimizer, replicate, shard_batch

    assert jax.device_count() == 4, jax.devices()
    B, T, I, H = 16, 9, 3, 8
    params = init_params(jax.random.key(0), Layout("lstm", I, H))
    params["head"] = jnp.full((H,), 0.1)
    opt = optimizer(1e-2)

    def loss_fn(p, batch, key):
        x, lengths, y = batch
        out, _ = jaxrnn.lstm({k: v for k, v in p.items() if k != "head"}, x,
                             lengths=lengths, batch_first=True)
        pred = masked_mean(out, lengths) @ p["head"]
        return jnp.mean((pred - y) ** 2), None

    step = make_train_step(loss_fn, opt)
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(B, T, I)).astype(np.float32),
                rng.integers(1, T + 1, size=B).astype(np.int32),
                rng.normal(size=B).astype(np.float32)) for _ in range(20)]

    def train(devices):
        mesh = data_mesh(devices)
        p, s = replicate((params, opt.init(params)), mesh)
        losses = []
        for batch in batches:
            batch = shard_batch(batch, mesh)
            assert len(batch[0].sharding.device_set) == len(devices)
            p, s, loss, _ = step(p, s, batch, None)
            losses.append(float(loss))
        assert p["weight_hh_l0"].sharding.is_fully_replicated
        assert len(p["weight_hh_l0"].sharding.device_set) == len(devices)
        return losses

    print(json.dumps({"four": train(jax.devices()), "one": train(jax.devices()[:1])}))
    """
)


def test_four_devices_match_one():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    losses = json.loads(done.stdout.strip().splitlines()[-1])
    four, one = np.array(losses["four"]), np.array(losses["one"])
    assert len(four) == 20 and np.all(np.isfinite(four))
    assert np.ptp(four) > 1e-3  # the parameters do move
    np.testing.assert_allclose(four, one, rtol=0, atol=1e-5)


def test_single_device_helpers_and_errors():
    mesh = data_mesh()
    x = shard_batch({"x": np.ones((4, 3), np.float32), "n": np.arange(4)}, mesh)
    np.testing.assert_array_equal(x["n"], np.arange(4))
    t = shard_batch(jnp.ones((5, 2 * mesh.size)), mesh, batch_axis=1)
    assert t.sharding.spec == jax.sharding.PartitionSpec(None, "data")
    assert replicate({"w": jnp.ones(3)}, mesh)["w"].sharding.is_fully_replicated
    with pytest.raises(
        ValueError, match=r"batch leaves need a batch axis 1, got a leaf of shape \(3,\)"
    ):
        shard_batch(np.ones(3), mesh, batch_axis=1)
