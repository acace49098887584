"""Padding, masks and pooling for variable-length batches.

Sequences in a batch are padded to a common length and described by ``lengths`` (``(B,)``
ints), which is what every layer's ``lengths=`` argument takes. Arrays are batch-major
``(B, T, ...)`` by default; pass ``batch_first=False`` for time-major ``(T, B, ...)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def pad_sequences(
    seqs: Sequence[Array | np.ndarray],
    padding_value: float = 0,
    *,
    max_len: int | None = None,
    batch_first: bool = True,
) -> tuple[Array, Array]:
    """Stack sequences ``(T_i, ...)`` into ``padded (B, T_max, ...)`` and ``lengths (B,)``.

    Runs on the host (NumPy), before ``jax.jit``. ``max_len`` pads to a fixed length instead
    of the longest sequence (a fixed shape avoids recompiling for every batch).

    Args:
        seqs: a list of ``B`` arrays ``(T_i, ...)`` sharing their trailing shape.
        padding_value: the value of the padded steps.
        max_len: pad to this many steps (at least the longest ``T_i``); default the longest.
        batch_first: return ``(B, T, ...)`` if true, time-major ``(T, B, ...)`` otherwise.

    Returns:
        ``(padded, lengths)``: ``padded`` ``(B, T, ...)`` in the sequences' common dtype and
        ``lengths`` ``(B,)`` int32, what every layer's ``lengths=`` takes.

    Examples:
        >>> import numpy as np
        >>> from jaxrnn.sequences import pad_sequences
        >>> x, lengths = pad_sequences([np.ones((3, 2)), np.ones((1, 2))])
        >>> x.shape, lengths.tolist(), x[1, :, 0].tolist()
        ((2, 3, 2), [3, 1], [1.0, 0.0, 0.0])
    """
    if isinstance(seqs, np.ndarray | jax.Array) or not isinstance(seqs, Sequence):
        raise TypeError(f"seqs must be a list of arrays (T_i, ...), got {type(seqs).__name__}")
    if not seqs:
        raise ValueError("seqs must hold at least one sequence, got an empty list")
    arrays = [np.asarray(s) for s in seqs]
    for i, a in enumerate(arrays):
        if a.ndim == 0:
            raise ValueError(f"seqs[{i}] must have a time axis (T_i, ...), got a scalar")
        if a.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(
                f"all sequences must share their trailing shape; seqs[0] is "
                f"{arrays[0].shape[1:]} after the time axis, seqs[{i}] is {a.shape[1:]}"
            )
    lengths = np.array([len(a) for a in arrays], dtype=np.int32)
    longest = int(lengths.max())
    if max_len is None:
        max_len = longest
    elif max_len < longest:
        raise ValueError(f"max_len={max_len} is shorter than the longest sequence ({longest})")
    dtype = np.result_type(*arrays)
    padded = np.full((len(arrays), max_len, *arrays[0].shape[1:]), padding_value, dtype=dtype)
    for i, a in enumerate(arrays):
        padded[i, : len(a)] = a
    if not batch_first:
        padded = np.swapaxes(padded, 0, 1)
    return jnp.asarray(padded), jnp.asarray(lengths)


def _check(x: Array, lengths: Array, batch_first: bool, min_ndim: int = 2) -> Array:
    if x.ndim < min_ndim:
        layout = "(B, T, ...)" if batch_first else "(T, B, ...)"
        raise ValueError(f"x must be at least {min_ndim}-D {layout}, got shape {x.shape}")
    batch = x.shape[0] if batch_first else x.shape[1]
    lengths = jnp.asarray(lengths)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape (B,) = ({batch},), got {lengths.shape}")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    return lengths


def lengths_to_mask(lengths: Array, max_len: int, *, batch_first: bool = True) -> Array:
    """``mask[b, t] = t < lengths[b]``: ``(B,) -> (B, T)`` bool (``(T, B)`` if not batch_first).

    Args:
        lengths: ``(B,)`` integer valid lengths.
        max_len: ``T``, the padded length.
        batch_first: ``(B, T)`` if true, ``(T, B)`` otherwise.

    Returns:
        A bool mask, true at the valid steps.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.sequences import lengths_to_mask
        >>> lengths_to_mask(jnp.array([3, 1]), 4).astype(int).tolist()
        [[1, 1, 1, 0], [1, 0, 0, 0]]
    """
    lengths = jnp.asarray(lengths)
    if lengths.ndim != 1 or not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(
            f"lengths must be a 1-D integer array (B,), got shape {lengths.shape} "
            f"and dtype {lengths.dtype}"
        )
    mask = jnp.arange(max_len)[None, :] < lengths[:, None]
    return mask if batch_first else mask.T


def _expand(mask: Array, ndim: int) -> Array:
    return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))


def reverse_padded(x: Array, lengths: Array, *, batch_first: bool = True) -> Array:
    """Reverse each sequence's first ``lengths[b]`` steps; padding stays where it is.

    ``x (B, T, ...) -> (B, T, ...)``. Applying it twice gives ``x`` back.

    Args:
        x: a padded batch ``(B, T, ...)`` (``(T, B, ...)`` if not ``batch_first``).
        lengths: ``(B,)`` integer valid lengths.
        batch_first: the layout of ``x``.

    Returns:
        ``x`` with each sequence's valid steps in reverse order, in ``x``'s shape.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.sequences import reverse_padded
        >>> x = jnp.array([[1, 2, 3, 4], [1, 2, 0, 0]])[..., None]
        >>> reverse_padded(x, jnp.array([4, 2]))[..., 0].tolist()
        [[4, 3, 2, 1], [2, 1, 0, 0]]
    """
    lengths = _check(x, lengths, batch_first)
    if not batch_first:
        return jnp.swapaxes(reverse_padded(jnp.swapaxes(x, 0, 1), lengths), 0, 1)
    t = jnp.arange(x.shape[1])[None, :]
    index = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return jnp.take_along_axis(x, _expand(index, x.ndim), axis=1)


def masked_mean(x: Array, lengths: Array, *, batch_first: bool = True) -> Array:
    """Mean over each sequence's valid steps: ``x (B, T, H) -> (B, H)``; 0 for a length 0.

    Args:
        x: a padded batch ``(B, T, H)`` (``(T, B, H)`` if not ``batch_first``); any number
            of trailing feature axes.
        lengths: ``(B,)`` integer valid lengths.
        batch_first: the layout of ``x``.

    Returns:
        ``(B, H)``: the mean over steps ``t < lengths[b]``; padding never enters it.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.sequences import masked_mean
        >>> x = jnp.array([[1.0, 2.0, 3.0], [4.0, 8.0, 100.0]])[..., None]
        >>> masked_mean(x, jnp.array([3, 2]))[:, 0].tolist()
        [2.0, 6.0]
    """
    lengths = _check(x, lengths, batch_first)
    axis = 1 if batch_first else 0
    mask = lengths_to_mask(lengths, x.shape[axis], batch_first=batch_first)
    total = jnp.sum(jnp.where(_expand(mask, x.ndim), x, 0), axis=axis)
    count = jnp.maximum(lengths, 1).astype(x.dtype)
    return total / _expand(count, total.ndim)


def last_valid(x: Array, lengths: Array, *, batch_first: bool = True) -> Array:
    """Each sequence's output at its last valid step ``lengths[b] - 1``: ``(B, T, H) -> (B, H)``.

    This is the N-vs-1 readout for a forward layer; a length-0 sequence reads step 0.

    Args:
        x: a padded batch ``(B, T, H)`` (``(T, B, H)`` if not ``batch_first``).
        lengths: ``(B,)`` integer valid lengths.
        batch_first: the layout of ``x``.

    Returns:
        ``(B, H)``: ``x[b, lengths[b] - 1]`` for every ``b``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxrnn.sequences import last_valid
        >>> x = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])[..., None]
        >>> last_valid(x, jnp.array([3, 2]))[:, 0].tolist()
        [3.0, 5.0]
    """
    lengths = _check(x, lengths, batch_first)
    if not batch_first:
        x = jnp.swapaxes(x, 0, 1)
    index = jnp.clip(lengths - 1, 0, x.shape[1] - 1)
    return jnp.take_along_axis(x, _expand(index[:, None], x.ndim), axis=1)[:, 0]
