"""Save and restore a training state (params, optimizer state, anything else) with orbax.

``orbax-checkpoint`` is an optional dependency (the ``examples`` extra); it is imported
when a checkpoint is first saved or restored.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def _orbax():
    try:
        import orbax.checkpoint as ocp
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "checkpoints need orbax-checkpoint: pip install 'jaxrnn[examples]' "
            "or pip install orbax-checkpoint"
        ) from e
    return ocp


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree: PyTree) -> PyTree:
    # orbax stores plain arrays; typed PRNG keys go in as their raw key data.
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _manager(directory, max_to_keep: int | None):
    ocp = _orbax()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(os.path.abspath(os.fspath(directory)), options=options)


def save_checkpoint(
    directory: str | os.PathLike, step: int, state: PyTree, *, keep: int = 3
) -> None:
    """Write ``state`` (any pytree of arrays) as checkpoint ``step`` under ``directory``.

    Keeps the newest ``keep`` checkpoints and deletes older ones. Returns once the files are
    written. Typed PRNG keys (``jax.random.key``) in ``state`` are supported.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    ocp = _orbax()
    with _manager(directory, keep) as manager:
        manager.save(step, args=ocp.args.StandardSave(_unwrap_keys(state)), force=True)
        manager.wait_until_finished()


def restore_checkpoint(
    directory: str | os.PathLike, target: PyTree, *, step: int | None = None
) -> tuple[PyTree, int] | None:
    """Restore the newest checkpoint (or ``step``) into the structure of ``target``.

    ``target`` is a pytree like the saved state (e.g. freshly initialized params and
    optimizer state); its shapes, dtypes and shardings are used. Returns ``(state, step)``,
    or ``None`` if ``directory`` holds no checkpoint.
    """
    ocp = _orbax()
    if not os.path.isdir(directory):
        return None
    with _manager(directory, None) as manager:
        steps = manager.all_steps()
        if step is None:
            if not steps:
                return None
            step = max(steps)
        elif step not in steps:
            raise ValueError(f"no checkpoint for step {step} in {directory}; found {sorted(steps)}")
        raw = manager.restore(step, args=ocp.args.StandardRestore(_unwrap_keys(target)))

    def rewrap(t, r):
        return jax.random.wrap_key_data(r, impl=jax.random.key_impl(t)) if _is_key(t) else r

    return jax.tree.map(rewrap, target, raw), int(step)
