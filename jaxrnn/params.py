"""PyTorch's parameter layout: names, shapes, validation and initialization.

A layer's parameters live in a flat mapping keyed exactly as ``torch.nn.{RNN,LSTM,GRU}``'s
state_dict: ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``,
``weight_hr_l{k}`` (LSTM projection), each with a ``_reverse`` twin for the backward
direction. Everything about the layer (depth, directions, bias, sizes) is read off the keys.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Literal

import jax
import jax.numpy as jnp

Array = jax.Array
Mode = Literal["rnn", "lstm", "gru"]
RecurrentInit = Literal["uniform", "orthogonal"]

GATES: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}
_NAME = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?")


@dataclasses.dataclass(frozen=True)
class Layout:
    """Sizes of a stacked recurrent layer, as PyTorch's constructor arguments name them."""

    mode: Mode
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    bidirectional: bool = False
    proj_size: int = 0

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Size of ``h`` (and of each direction's output): ``proj_size`` if set, else hidden."""
        return self.proj_size or self.hidden_size

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter name with its shape, in PyTorch's state_dict order."""
        g, h = GATES[self.mode], self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.output_size * self.num_directions
            for suffix in ("", "_reverse")[: self.num_directions]:
                s = f"_l{layer}{suffix}"
                shapes[f"weight_ih{s}"] = (g * h, in_size)
                shapes[f"weight_hh{s}"] = (g * h, self.output_size)
                if self.bias:
                    shapes[f"bias_ih{s}"] = (g * h,)
                    shapes[f"bias_hh{s}"] = (g * h,)
                if self.proj_size:
                    shapes[f"weight_hr{s}"] = (self.proj_size, h)
        return shapes


def check_mode(mode: str) -> None:
    if mode not in GATES:
        raise ValueError(f"mode must be one of {sorted(GATES)}, got {mode!r}")


def layout_of(mode: Mode, params: Mapping[str, Array]) -> Layout:
    """Read a :class:`Layout` off PyTorch-named ``params`` and check every key and shape.

    Raises ``TypeError``/``ValueError`` naming the missing, unknown or misshaped key.
    """
    check_mode(mode)
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a mapping of PyTorch state_dict names to arrays, "
            f"got {type(params).__name__}"
        )
    if "weight_ih_l0" not in params:
        raise ValueError(
            "params has no 'weight_ih_l0'; expected PyTorch state_dict names "
            f"(weight_ih_l0, weight_hh_l0, ...), got keys {sorted(params)}"
        )
    w = params["weight_ih_l0"]
    g = GATES[mode]
    if getattr(w, "ndim", None) != 2 or w.shape[0] % g:
        raise ValueError(
            f"params['weight_ih_l0'] of a {mode} must be 2-D with a first axis divisible by "
            f"{g} (gates x hidden_size), got shape {getattr(w, 'shape', None)}"
        )
    # Depth, directions, bias and projection are read off every well-formed name, so that a
    # key missing from the middle (weight_ih_l1, ..._reverse) is reported as missing.
    found = [m.groups() for m in map(_NAME.fullmatch, params) if m]
    hr = next((params[k] for k in params if k.startswith("weight_hr_l")), None)
    proj_size = int(hr.shape[0]) if mode == "lstm" and getattr(hr, "ndim", 0) >= 1 else 0
    layout = Layout(
        mode=mode,
        input_size=int(w.shape[1]),
        hidden_size=int(w.shape[0]) // g,
        num_layers=1 + max(int(layer) for _, layer, _ in found),
        bias=any(name.startswith("bias") for name, _, _ in found),
        bidirectional=any(reverse for _, _, reverse in found),
        proj_size=proj_size,
    )
    expected = layout.shapes()
    missing = [k for k in expected if k not in params]
    unknown = [k for k in params if k not in expected]
    if missing or unknown:
        raise ValueError(
            f"params do not form a {layout.num_layers}-layer "
            f"{'bidirectional ' if layout.bidirectional else ''}{mode} "
            f"(read off weight_ih_l0 and the keys present): missing keys {missing}, "
            f"unknown keys {unknown}"
        )
    for name, shape in expected.items():
        if not hasattr(params[name], "shape"):
            raise TypeError(f"params[{name!r}] must be an array, got {type(params[name]).__name__}")
        got = tuple(params[name].shape)
        if got != shape:
            raise ValueError(f"params[{name!r}] should have shape {shape}, got {got}")
        dtype = getattr(params[name], "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"params[{name!r}] must be a floating-point array, got dtype {dtype}")
    return layout


def layer_params(params: Mapping[str, Array], layer: int, reverse: bool) -> dict[str, Array]:
    """The cell parameters of one layer and direction, with the ``_l{k}[_reverse]`` suffix cut."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    return {k[: -len(suffix)]: v for k, v in params.items() if k.endswith(suffix)}


def init_param(
    key: Array,
    shape: tuple[int, ...],
    *,
    name: str,
    hidden_size: int,
    recurrent_init: RecurrentInit = "uniform",
    dtype: jnp.dtype = jnp.float32,
) -> Array:
    """One parameter as PyTorch draws it, ``U(-1/sqrt(H), 1/sqrt(H))``.

    With ``recurrent_init="orthogonal"`` each gate block of ``weight_hh`` is instead a
    (semi-)orthogonal matrix (Saxe et al. 2014), which keeps the recurrent Jacobian
    well-conditioned at initialization.
    """
    if recurrent_init not in ("uniform", "orthogonal"):
        raise ValueError(
            f"recurrent_init must be 'uniform' or 'orthogonal', got {recurrent_init!r}"
        )
    if recurrent_init == "orthogonal" and name.startswith("weight_hh"):
        gates = shape[0] // hidden_size
        keys = jax.random.split(key, gates)
        blocks = [jax.nn.initializers.orthogonal()(k, (hidden_size, shape[1]), dtype) for k in keys]
        return jnp.concatenate(blocks, axis=0)
    bound = 1.0 / math.sqrt(hidden_size)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def init_params(
    key: Array,
    layout: Layout,
    *,
    recurrent_init: RecurrentInit = "uniform",
    dtype: jnp.dtype = jnp.float32,
) -> dict[str, Array]:
    """Fresh PyTorch-named parameters for ``layout`` (see :func:`init_param`)."""
    keys = jax.random.split(key, len(layout.shapes()))
    return {
        name: init_param(
            k,
            shape,
            name=name,
            hidden_size=layout.hidden_size,
            recurrent_init=recurrent_init,
            dtype=dtype,
        )
        for k, (name, shape) in zip(keys, layout.shapes().items(), strict=True)
    }
