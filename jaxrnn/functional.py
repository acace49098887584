"""Stacked, bidirectional recurrent layers as pure functions over PyTorch-named parameters.

:func:`rnn`, :func:`lstm` and :func:`gru` take the state_dict of the matching
``torch.nn`` module (see :mod:`jaxrnn.interop`) and return what it returns, in the same
shapes and order. :func:`stack` is the machinery under them and takes any cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxrnn import cells
from jaxrnn import dropout as vdropout
from jaxrnn.cells import Array, Carry, Cell, Params
from jaxrnn.params import Layout, layer_params, layout_of
from jaxrnn.scan import check_matmul_dtype, scan


def check_lengths(lengths, batch: int, steps: int) -> Array:
    """Validate ``lengths`` against a ``(T, B)`` batch and return it as an int32 ``(B,)`` array.

    Values are range-checked whenever they are concrete; under ``jax.jit`` only the shape and
    dtype can be checked.
    """
    lengths = jnp.asarray(lengths)
    if lengths.shape != (batch,):
        raise ValueError(
            f"lengths must have shape (batch,) = ({batch},), got shape {lengths.shape}"
        )
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    try:
        values = np.asarray(lengths)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        values = None
    if values is not None and values.size and (values.min() < 1 or values.max() > steps):
        raise ValueError(
            f"lengths must lie in [1, T] = [1, {steps}], got min {values.min()} "
            f"and max {values.max()}"
        )
    return lengths.astype(jnp.int32)


def _dropout(key: Array, x: Array, rate: float) -> Array:
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def stack(
    cell: Cell,
    layers: Sequence[Sequence[Params]],
    x: Array,
    carries: Sequence[Sequence[Carry]],
    *,
    lengths: Array | None = None,
    batch_first: bool = False,
    dropout: float = 0.0,
    key: Array | None = None,
    unroll: int | bool = 1,
    input_dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    remat: int | bool | None = None,
    matmul_dtype: DTypeLike | None = None,
) -> tuple[Array, list[list[Carry]]]:
    """Run ``cell`` as a stacked, optionally bidirectional layer: ``x (T, B, I) -> (T, B, D*H)``.

    ``layers[k][d]`` holds the cell parameters of layer ``k`` and direction ``d`` (``d = 1``,
    if present, runs backwards in time) and ``carries[k][d]`` its initial carry. Each layer
    reads the concatenated outputs of both directions of the layer below. With ``dropout > 0``
    and a ``key``, dropout is applied to every layer's output except the last, as in PyTorch.
    ``input_dropout`` / ``recurrent_dropout`` (with a ``key``) are variational dropout
    (:mod:`jaxrnn.dropout`): one mask per sequence, layer and direction, shared by all time
    steps, on each layer's input and on ``h`` where it enters ``W_hh``. ``remat`` (a chunk
    length, or ``True`` for ``ceil(√T)``) checkpoints each layer's loop in chunks, bounding
    activation memory for long sequences (see :func:`jaxrnn.scan.scan`). ``matmul_dtype``
    (e.g. ``jnp.bfloat16``) runs the matmuls, forward and backward, on operands cast to it with
    sums in ``x``'s dtype (built-in cells only; see :func:`jaxrnn.scan.scan`).
    ``x`` is ``(B, T, I)`` if ``batch_first``. Returns the output of the top layer and the
    final carries, nested like ``carries``.
    """
    if not layers:
        raise ValueError("layers must hold at least one layer")
    directions = len(layers[0])
    if directions not in (1, 2) or any(len(layer) != directions for layer in layers):
        raise ValueError(
            "every layer must hold 1 (forward) or 2 (forward, reverse) parameter sets, got "
            f"{[len(layer) for layer in layers]}"
        )
    if len(carries) != len(layers) or any(len(c) != directions for c in carries):
        raise ValueError(
            f"carries must be nested like layers ({len(layers)} x {directions}), got "
            f"{[len(c) for c in carries]}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D (T, B, I) or (B, T, I), got shape {x.shape}")
    if batch_first:
        x = jnp.swapaxes(x, 0, 1)
    if x.shape[0] == 0:
        raise ValueError(f"x must have at least one time step, got T = 0 (shape {x.shape})")
    if lengths is not None:
        lengths = check_lengths(lengths, x.shape[1], x.shape[0])
    vdropout.check_rate("input_dropout", input_dropout)
    vdropout.check_rate("recurrent_dropout", recurrent_dropout)
    apply_dropout = dropout > 0.0 and key is not None
    if apply_dropout:
        keys = jax.random.split(key, max(len(layers) - 1, 1))
    variational = (input_dropout > 0.0 or recurrent_dropout > 0.0) and key is not None
    matmul_dtype = check_matmul_dtype(matmul_dtype)
    if matmul_dtype is not None and (input_dropout > 0.0 or recurrent_dropout > 0.0):
        raise ValueError(
            "matmul_dtype runs on the fused loops only, and variational dropout "
            "(input_dropout / recurrent_dropout) takes the generic one; use one or the other"
        )
    if variational:
        # fold_in keeps the between-layer dropout's keys what they are without this option
        vkeys = jax.random.split(jax.random.fold_in(key, 1), (len(layers), directions))

    finals = []
    for k, (layer, layer_carries) in enumerate(zip(layers, carries, strict=True)):
        outs, layer_finals = [], []
        for d, (p, c) in enumerate(zip(layer, layer_carries, strict=True)):
            step = cell
            if variational:
                p = vdropout.with_masks(
                    vkeys[k, d], p, c, x.shape[-1], input_rate=input_dropout,
                    recurrent_rate=recurrent_dropout, dtype=x.dtype,
                )  # fmt: skip
                step = vdropout.variational(cell)
            c, y = scan(
                step, p, x, c, lengths=lengths, reverse=d == 1, unroll=unroll, remat=remat,
                matmul_dtype=matmul_dtype,
            )  # fmt: skip
            outs.append(y)
            layer_finals.append(c)
        finals.append(layer_finals)
        x = outs[0] if directions == 1 else jnp.concatenate(outs, axis=-1)
        if apply_dropout and k < len(layers) - 1:
            x = _dropout(keys[k], x, dropout)
    if batch_first:
        x = jnp.swapaxes(x, 0, 1)
    return x, finals


def _check_input(x, layout: Layout, batch_first: bool) -> tuple[Array, bool]:
    """Return ``x`` as a 3-D array and whether it came batched."""
    if not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"input must be a floating-point array, got dtype {x.dtype}")
    if x.ndim not in (2, 3):
        raise ValueError(
            f"input must be (T, B, I), (B, T, I) with batch_first, or unbatched (T, I); "
            f"got shape {x.shape}"
        )
    if x.shape[-1] != layout.input_size:
        raise ValueError(
            f"input has feature size {x.shape[-1]} but weight_ih_l0 expects input_size="
            f"{layout.input_size} (input shape {x.shape})"
        )
    batched = x.ndim == 3
    if not batched:
        x = x[:, None] if not batch_first else x[None]
    return x, batched


def _check_state(name: str, h, shape: tuple[int, ...], batched: bool) -> Array:
    if not hasattr(h, "shape"):
        raise TypeError(f"{name} must be an array of shape {shape}, got {type(h).__name__}")
    want = shape if batched else (shape[0], shape[2])
    if tuple(h.shape) != want:
        raise ValueError(f"{name} should have shape {want}, got {tuple(h.shape)}")
    if not jnp.issubdtype(h.dtype, jnp.floating):
        raise TypeError(f"{name} must be a floating-point array, got dtype {h.dtype}")
    h = jnp.asarray(h)
    return h if batched else h[:, None]


def _run(
    mode: Literal["rnn", "lstm", "gru"],
    cell: Cell,
    params: Mapping[str, Array],
    x,
    hx,
    *,
    lengths,
    batch_first: bool,
    dropout: float,
    key,
    unroll,
    input_dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    remat: int | bool | None = None,
    matmul_dtype: DTypeLike | None = None,
):
    layout = layout_of(mode, params)
    x, batched = _check_input(x, layout, batch_first)
    if lengths is not None and not batched:
        raise ValueError("lengths needs a batched input (T, B, I); got an unbatched (T, I)")
    batch = x.shape[0] if batch_first else x.shape[1]
    n, ld = layout.num_layers * layout.num_directions, layout.num_directions
    h_shape = (n, batch, layout.output_size)
    c_shape = (n, batch, layout.hidden_size)
    # A step's output has the promoted dtype of input, weights and state; the carry must
    # start in it too (e.g. bfloat16 input with float32 weights), or the scan rejects it.
    dtype = jnp.result_type(x, *params.values())
    if mode == "lstm":
        if hx is None:
            hx = (jnp.zeros(h_shape, dtype), jnp.zeros(c_shape, dtype))
        elif not isinstance(hx, tuple | list) or len(hx) != 2:
            got = (
                f"one array of shape {tuple(hx.shape)}"
                if hasattr(hx, "shape")
                else f"a {type(hx).__name__}" + (f" of {len(hx)}" if hasattr(hx, "__len__") else "")
            )
            raise TypeError(
                f"lstm expects hx=(h_0, c_0) with shapes {h_shape} and {c_shape}, got {got}"
            )
        else:
            hx = (
                _check_state("h_0", hx[0], h_shape, batched),
                _check_state("c_0", hx[1], c_shape, batched),
            )
            dtype = jnp.result_type(dtype, *hx)
            hx = (hx[0].astype(dtype), hx[1].astype(dtype))
        carries = [
            [(hx[0][k * ld + d], hx[1][k * ld + d]) for d in range(ld)] for k in range(n // ld)
        ]
    else:
        if hx is None:
            hx = jnp.zeros(h_shape, dtype)
        elif isinstance(hx, tuple | list):
            raise TypeError(
                f"{mode} expects hx as one array of shape {h_shape}, got a {type(hx).__name__}"
            )
        else:
            hx = _check_state("hx", hx, h_shape, batched)
            hx = hx.astype(jnp.result_type(dtype, hx))
        carries = [[hx[k * ld + d] for d in range(ld)] for k in range(n // ld)]

    layers = [
        [layer_params(params, k, reverse=d == 1) for d in range(ld)]
        for k in range(layout.num_layers)
    ]
    out, finals = stack(
        cell,
        layers,
        x,
        carries,
        lengths=lengths,
        batch_first=batch_first,
        dropout=dropout,
        key=key,
        unroll=unroll,
        input_dropout=input_dropout,
        recurrent_dropout=recurrent_dropout,
        remat=remat,
        matmul_dtype=matmul_dtype,
    )
    flat = [c for layer in finals for c in layer]
    if mode == "lstm":
        h_n = jnp.stack([h for h, _ in flat])
        c_n = jnp.stack([c for _, c in flat])
        if not batched:
            out, h_n, c_n = out[:, 0] if not batch_first else out[0], h_n[:, 0], c_n[:, 0]
        return out, (h_n, c_n)
    h_n = jnp.stack(flat)
    if not batched:
        out, h_n = out[:, 0] if not batch_first else out[0], h_n[:, 0]
    return out, h_n


def rnn(
    params: Mapping[str, Array],
    x: Array,
    hx: Array | None = None,
    *,
    nonlinearity: Literal["tanh", "relu"] = "tanh",
    lengths: Array | None = None,
    batch_first: bool = False,
    dropout: float = 0.0,
    key: Array | None = None,
    unroll: int | bool = 1,
    input_dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    remat: int | bool | None = None,
    matmul_dtype: DTypeLike | None = None,
) -> tuple[Array, Array]:
    """Elman RNN, as ``torch.nn.RNN``: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``.

    ``params`` are ``torch.nn.RNN``'s state_dict names; depth, directions and bias are read
    off them. ``lengths`` (``(B,)``) gives packed-sequence semantics; ``x`` is ``(B, T, I)``
    with ``batch_first`` and may be unbatched ``(T, I)``. ``dropout`` (between layers, as
    PyTorch) and the variational ``input_dropout``/``recurrent_dropout`` (see :func:`stack`)
    apply only when a ``key`` is given; ``remat`` checkpoints the time loop in chunks and
    ``matmul_dtype`` (e.g. ``jnp.bfloat16``) sets the matmuls' operand dtype (see
    :func:`stack`). The same holds for :func:`lstm` and :func:`gru`.
    """
    cell = {"tanh": cells.rnn_tanh_cell, "relu": cells.rnn_relu_cell}.get(nonlinearity)
    if cell is None:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return _run(
        "rnn", cell, params, x, hx, lengths=lengths, batch_first=batch_first,
        dropout=dropout, key=key, unroll=unroll, input_dropout=input_dropout,
        recurrent_dropout=recurrent_dropout, remat=remat, matmul_dtype=matmul_dtype,
    )  # fmt: skip


def lstm(
    params: Mapping[str, Array],
    x: Array,
    hx: tuple[Array, Array] | None = None,
    *,
    lengths: Array | None = None,
    batch_first: bool = False,
    dropout: float = 0.0,
    key: Array | None = None,
    unroll: int | bool = 1,
    input_dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    remat: int | bool | None = None,
    matmul_dtype: DTypeLike | None = None,
) -> tuple[Array, tuple[Array, Array]]:
    """LSTM, as ``torch.nn.LSTM``: ``x (T, B, I) -> (output, (h_n, c_n))``.

    ``output`` is ``(T, B, D*P)``, ``h_n`` ``(D*L, B, P)`` and ``c_n`` ``(D*L, B, H)``, where
    ``P`` is ``proj_size`` when ``weight_hr_l*`` are present and ``H`` otherwise.
    """
    return _run(
        "lstm", cells.lstm_cell, params, x, hx, lengths=lengths, batch_first=batch_first,
        dropout=dropout, key=key, unroll=unroll, input_dropout=input_dropout,
        recurrent_dropout=recurrent_dropout, remat=remat, matmul_dtype=matmul_dtype,
    )  # fmt: skip


def gru(
    params: Mapping[str, Array],
    x: Array,
    hx: Array | None = None,
    *,
    lengths: Array | None = None,
    batch_first: bool = False,
    dropout: float = 0.0,
    key: Array | None = None,
    unroll: int | bool = 1,
    input_dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    remat: int | bool | None = None,
    matmul_dtype: DTypeLike | None = None,
) -> tuple[Array, Array]:
    """GRU, as ``torch.nn.GRU``: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``."""
    return _run(
        "gru", cells.gru_cell, params, x, hx, lengths=lengths, batch_first=batch_first,
        dropout=dropout, key=key, unroll=unroll, input_dropout=input_dropout,
        recurrent_dropout=recurrent_dropout, remat=remat, matmul_dtype=matmul_dtype,
    )  # fmt: skip
