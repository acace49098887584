"""Data-parallel training on JAX's own sharding: one mesh axis over all devices.

Put the parameters and optimizer state on the mesh replicated (:func:`replicate`) and each
batch split along its batch axis (:func:`shard_batch`); the unchanged jitted train step
(:func:`jaxrnn.training.make_train_step`) then runs data-parallel, with XLA inserting the
gradient all-reduce. Multi-host: call ``jax.distributed.initialize()`` first on every host;
:func:`data_mesh` then spans every device of every host and :func:`shard_batch` takes each
host's own slice of the global batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any
DATA = "data"


def data_mesh(devices: Sequence[Any] | None = None, *, axis: str = DATA) -> Mesh:
    """A 1-D mesh named ``axis`` over ``devices`` (default: all devices of all hosts).

    Args:
        devices: the devices of the mesh; default ``jax.devices()``.
        axis: the name of the mesh axis.

    Returns:
        A ``jax.sharding.Mesh`` of shape ``(len(devices),)``.

    Examples:
        >>> import jax
        >>> from jaxrnn.training import data_mesh
        >>> mesh = data_mesh()
        >>> mesh.axis_names, mesh.size == len(jax.devices())
        (('data',), True)
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device, got none")
    return Mesh(np.asarray(devices), (axis,))


def _axis(mesh: Mesh) -> str:
    if len(mesh.axis_names) != 1:
        raise ValueError(f"expected a 1-D data mesh, got axes {mesh.axis_names}")
    return mesh.axis_names[0]


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Place every leaf of ``tree`` (params, optimizer state) whole on every device of ``mesh``.

    Args:
        tree: any pytree of arrays.
        mesh: a mesh from :func:`data_mesh`.

    Returns:
        ``tree`` with every leaf replicated over ``mesh``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.training import data_mesh, replicate
        >>> params = replicate({"w": jnp.ones((3, 4))}, data_mesh())
        >>> params["w"].sharding.is_fully_replicated
        True
    """
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(batch: PyTree, mesh: Mesh, *, batch_axis: int = 0) -> PyTree:
    """Split every leaf of ``batch`` along ``batch_axis`` over the devices of ``mesh``.

    ``batch_axis=0`` for batch-first arrays and ``lengths (B,)``, ``1`` for time-major
    ``(T, B, ...)``. In a single process the leaves are the global batch, whose size must
    divide evenly over the devices; with several processes each passes its local part.

    Args:
        batch: any pytree of arrays (NumPy or JAX), e.g. ``(x, lengths, labels)``.
        mesh: a mesh from :func:`data_mesh`.
        batch_axis: the axis of every leaf that holds the batch.

    Returns:
        ``batch`` with every leaf split over ``mesh`` along ``batch_axis``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.training import data_mesh, shard_batch
        >>> x, lengths = shard_batch((jnp.ones((8, 5, 3)), jnp.full(8, 5)), data_mesh())
        >>> x.shape, lengths.shape
        ((8, 5, 3), (8,))
    """
    axis = _axis(mesh)

    def put(x):
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        if x.ndim <= batch_axis:
            raise ValueError(
                f"batch leaves need a batch axis {batch_axis}, got a leaf of shape {x.shape}"
            )
        spec = PartitionSpec(*([None] * batch_axis), axis)
        sharding = NamedSharding(mesh, spec)
        if jax.process_count() > 1:
            return jax.make_array_from_process_local_data(sharding, np.asarray(x))
        if x.shape[batch_axis] % mesh.size:
            raise ValueError(
                f"batch size {x.shape[batch_axis]} (axis {batch_axis} of a leaf of shape "
                f"{x.shape}) does not divide over {mesh.size} devices"
            )
        return jax.device_put(x, sharding)

    return jax.tree.map(put, batch)
