"""cuDNN's flat weight space and torch's parameter names: the layout, packing, unpacking.

cuDNN keeps every weight of a stack in one buffer. ``cudnnGetRNNWeightParams`` gives, for a
pseudo-layer ``layer * D + direction`` and a linear-layer id, where a matrix and its bias
start. Ids: LSTM 0-3 the input matrices of gates i, f, g, o, 4-7 the recurrent ones, 8 the
projection (no bias); GRU 0-2 / 3-5 gates r, z, n; RNN 0 / 1. The gate orders are torch's,
so ``weight_ih`` splits into per-gate row blocks that go in unchanged; double-bias mode
keeps ``bias_ih`` and ``bias_hh`` apart as torch does.

On a GPU the offsets are cuDNN's own (asked through the library at trace time); the
:func:`canonical` layout (all matrices by pseudo-layer and id, then all biases, no gaps)
is what this module assumes without one, for the CPU-side round-trip tests, and a GPU test
checks that cuDNN agrees with it.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
# cudnnRNNMode_t
CELL = {"rnn_relu": 0, "rnn_tanh": 1, "lstm": 2, "gru": 3}


class Shape(NamedTuple):
    """A stack as cuDNN sees it."""

    mode: str
    input: int
    hidden: int
    layers: int = 1
    bidir: bool = False
    proj: int = 0

    @property
    def dirs(self) -> int:
        return 2 if self.bidir else 1

    @property
    def out(self) -> int:
        return self.proj or self.hidden

    @property
    def n_lin(self) -> int:
        return 2 * GATES[self.mode] + (1 if self.proj else 0)

    def layer_input(self, layer: int) -> int:
        return self.input if layer == 0 else self.dirs * self.out


class Piece(NamedTuple):
    """One torch tensor's place in the weight space (``offset`` in elements)."""

    name: str
    shape: tuple[int, ...]
    parts: tuple[tuple[int, int], ...]  # (offset, size) of each gate block, in row order


def _torch_name(kind: str, layer: int, direction: int) -> str:
    return f"{kind}_l{layer}" + ("_reverse" if direction else "")


def pieces(shape: Shape, table: np.ndarray, *, bias: bool = True) -> list[Piece]:
    """Every torch parameter of ``shape`` and where its gate blocks are, from ``table``
    (``(L*D, n_lin, 4)``: matrix offset, matrix size, bias offset, bias size)."""
    g, h = GATES[shape.mode], shape.hidden
    out = []
    for layer in range(shape.layers):
        for d in range(shape.dirs):
            row = table[layer * shape.dirs + d]
            i = shape.layer_input(layer)
            expect = [(h, i)] * g + [(h, shape.out)] * g + ([(shape.proj, h)] if shape.proj else [])
            for lin, (r, c) in enumerate(expect):
                if row[lin, 1] != r * c:
                    raise RuntimeError(
                        f"cuDNN's weight layout disagrees with torch's shapes: pseudo-layer "
                        f"{layer * shape.dirs + d} id {lin} has {row[lin, 1]} elements, "
                        f"expected {r}x{c}"
                    )
            ih = tuple((int(row[k, 0]), h * i) for k in range(g))
            hh = tuple((int(row[g + k, 0]), h * shape.out) for k in range(g))
            out.append(Piece(_torch_name("weight_ih", layer, d), (g * h, i), ih))
            out.append(Piece(_torch_name("weight_hh", layer, d), (g * h, shape.out), hh))
            if bias:
                bih = tuple((int(row[k, 2]), h) for k in range(g))
                bhh = tuple((int(row[g + k, 2]), h) for k in range(g))
                out.append(Piece(_torch_name("bias_ih", layer, d), (g * h,), bih))
                out.append(Piece(_torch_name("bias_hh", layer, d), (g * h,), bhh))
            if shape.proj:
                hr = ((int(row[2 * g, 0]), shape.proj * h),)
                out.append(Piece(_torch_name("weight_hr", layer, d), (shape.proj, h), hr))
    return out


def canonical(shape: Shape) -> tuple[np.ndarray, int]:
    """The assumed layout ``(table (L*D, n_lin, 4), total elements)``: first every matrix of
    the stack (pseudo-layer by pseudo-layer, ids in order), then every bias in the same order,
    packed without gaps. cuDNN 9.19 on an H200 reported exactly this (all matrices before any
    bias), not biases after each pseudo-layer's matrices."""
    g, h = GATES[shape.mode], shape.hidden
    table = np.full((shape.layers * shape.dirs, shape.n_lin, 4), -1, np.int64)
    table[..., 1] = 0
    table[..., 3] = 0
    pos = 0
    for layer in range(shape.layers):
        for d in range(shape.dirs):
            row = table[layer * shape.dirs + d]
            i = shape.layer_input(layer)
            sizes = [h * i] * g + [h * shape.out] * g + ([shape.proj * h] if shape.proj else [])
            for lin, size in enumerate(sizes):
                row[lin, 0], row[lin, 1] = pos, size
                pos += size
    for row in table:
        for lin in range(2 * g):
            row[lin, 2], row[lin, 3] = pos, h
            pos += h
    return table, pos


@functools.cache
def queried(shape: Shape, dtype: int = 0) -> tuple[np.ndarray, int]:
    """cuDNN's own layout on this GPU (needs the library loaded and a GPU)."""
    from jaxrnn_cudnn._lib import last_error, library

    lib = library()
    n = shape.layers * shape.dirs * shape.n_lin * 4
    buf = (ctypes.c_int64 * n)()
    rc = lib.jaxrnn_cudnn_weight_params(
        CELL[shape.mode], int(shape.bidir), shape.layers, shape.input, shape.hidden,
        shape.proj, dtype, shape.n_lin, buf,
    )  # fmt: skip
    if rc < 0:
        raise RuntimeError(f"cudnnGetRNNWeightParams failed: {last_error(lib)}")
    plan = (ctypes.c_int64 * 4)()
    rc = lib.jaxrnn_cudnn_plan(
        CELL[shape.mode], int(shape.bidir), shape.layers, shape.input, shape.hidden,
        shape.proj, 0, 0, dtype, 1, 1, 0, plan,
    )  # fmt: skip
    if rc < 0:
        raise RuntimeError(f"cuDNN cannot plan this RNN: {last_error(lib)}")
    elem = 2 if dtype == 1 else 4
    table = np.ctypeslib.as_array(buf).astype(np.int64)
    return table.reshape(shape.layers * shape.dirs, shape.n_lin, 4), int(plan[3]) // elem


def pack(shape: Shape, params: Mapping[str, Any], table: np.ndarray, total: int, dtype: Any) -> Any:
    """torch-named parameters -> the flat weight space ``(total,)`` (missing biases: zeros).

    One concatenation of the gate blocks sorted by offset, zeros in the gaps, so autodiff
    through it is slicing: the weight-space gradient unpacks itself.
    """
    blocks = []
    for p in pieces(shape, table, bias=True):
        if p.name not in params:
            continue  # a bias-free stack: cuDNN's bias slots stay zero
        a = jnp.asarray(params[p.name], dtype).reshape(len(p.parts), -1)
        blocks += [(off, a[k]) for k, (off, _) in enumerate(p.parts)]
    blocks.sort(key=lambda b: b[0])
    seq, pos = [], 0
    for off, a in blocks:
        if off < pos:
            raise RuntimeError(f"overlapping weight blocks at offset {off}")
        if off > pos:
            seq.append(jnp.zeros((off - pos,), dtype))
        seq.append(a)
        pos = off + a.shape[0]
    if pos < total:
        seq.append(jnp.zeros((total - pos,), dtype))
    return jnp.concatenate(seq)


def unpack(shape: Shape, flat: Any, table: np.ndarray, *, bias: bool = True) -> dict[str, Any]:
    """The flat weight space -> torch-named parameters (the inverse of :func:`pack`)."""
    out = {}
    for p in pieces(shape, table, bias=bias):
        parts = [flat[off : off + size] for off, size in p.parts]
        out[p.name] = jnp.concatenate(parts).reshape(p.shape)
    return out
