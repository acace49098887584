"""A small, deterministic training run for the fault tests, also run as a subprocess.

``python tests/_fault_train.py DIR KILL_AT`` trains steps ``[0, 3)``, checkpoints step 3 into
``DIR``, trains ``[3, 6)`` and saves step 6, SIGKILLing itself at ``KILL_AT`` inside that second
save (``mkdir``: its temporary directory was just made; ``commit``: everything is written but
not yet renamed into place; ``renamed``: just after the step directory's atomic rename;
``none``: no kill).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import jaxrnn
import jaxrnn.nnx
from jaxrnn.training import make_train_step, optimizer, save_checkpoint

State = dict[str, Any]


def setup():
    """Fresh state, the jitted step and ``batch(i)``: a 2-layer GRU regressor with dropout."""
    params = jaxrnn.nnx.GRU(3, 8, 2, rngs=nnx.Rngs(0)).state_dict()
    opt = optimizer(1e-2, skip_nonfinite=True)

    def loss_fn(p, batch, key):
        x, y = batch
        out, _ = jaxrnn.gru(p, x, dropout=0.3, key=key)
        return jnp.mean((out - y) ** 2), None

    def batch(i: int):
        kx, ky = jax.random.split(jax.random.fold_in(jax.random.key(1), i))
        return jax.random.normal(kx, (6, 4, 3)), jax.random.normal(ky, (6, 4, 8))

    state = {"params": params, "opt_state": opt.init(params), "key": jax.random.key(7)}
    return state, make_train_step(loss_fn, opt), batch


def train(state: State, step_fn, batch, start: int, stop: int) -> State:
    """Steps ``[start, stop)``; the PRNG key travels in the state."""
    params, opt_state, key = state["params"], state["opt_state"], state["key"]
    for i in range(start, stop):
        key, sub = jax.random.split(key)
        params, opt_state, _, _ = step_fn(params, opt_state, batch(i), sub)
    return {"params": params, "opt_state": opt_state, "key": key}


def _install_kill(kill_at: str) -> None:
    from orbax.checkpoint._src.path import async_path

    def die():
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    mkdir, write_text, rename = async_path.mkdir, async_path.write_text, async_path.rename

    async def killing_mkdir(path, *args, **kwargs):
        out = await mkdir(path, *args, **kwargs)
        if kill_at == "mkdir" and "tmp" in os.fspath(path):
            die()
        return out

    async def killing_write_text(path, text):
        out = await write_text(path, text)
        if kill_at == "commit" and "commit_success" in os.fspath(path):
            die()
        return out

    async def killing_rename(src, dst):
        out = await rename(src, dst)
        if kill_at == "renamed" and os.path.basename(os.fspath(dst)) == "6":
            die()
        return out

    async_path.mkdir = killing_mkdir
    async_path.write_text = killing_write_text
    async_path.rename = killing_rename


def main(directory: str, kill_at: str) -> None:
    state, step_fn, batch = setup()
    state = train(state, step_fn, batch, 0, 3)
    save_checkpoint(directory, 3, state)
    state = train(state, step_fn, batch, 3, 6)
    _install_kill(kill_at)
    print("saving step 6", flush=True)
    save_checkpoint(directory, 6, state)
    print("saved step 6", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
