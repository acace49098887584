"""Parameter layout: PyTorch's state_dict names and shapes for any family, validation, init.

A layer's parameters live in a flat mapping keyed as ``torch.nn.{RNN,LSTM,GRU}``'s
state_dict: each per-layer name of the family (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``, ``weight_hr``, ...) with a ``_l{k}`` suffix, and a ``_l{k}_reverse`` twin for the
backward direction. Depth, directions and bias are read off the keys, sizes off the family's
layer-0 parameters (:func:`layout_of`).
"""

from __future__ import annotations

import dataclasses
import numbers
import re
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp

from jaxrnn import families
from jaxrnn.families.base import Family, Sizes

Array = jax.Array
RecurrentInit = Literal["uniform", "orthogonal"]

_NAME = re.compile(r"(\w+?)_l(\d+)(_reverse)?")


def check_constructor(
    *,
    input_size: Any,
    hidden_size: Any,
    num_layers: Any = 1,
    bias: Any = True,
    batch_first: Any = False,
    dropout: Any = 0.0,
    bidirectional: Any = False,
    proj_size: Any = 0,
) -> None:
    """``torch.nn.RNNBase.__init__``'s argument checks (PyTorch 2.13), with what came.

    ``input_size=None`` skips that check (linen infers it from the first input).
    """
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number):
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an "
            f"element being zeroed, got {dropout!r}"
        )
    if not 0 <= dropout <= 1:  # type: ignore[operator]
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an "
            f"element being zeroed, got {dropout!r}"
        )
    if float(dropout) > 0 and num_layers == 1:  # type: ignore[arg-type]
        warnings.warn(
            "dropout option adds dropout after all but last recurrent layer, so non-zero "
            f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
            f"num_layers={num_layers}",
            stacklevel=3,
        )
    for name, value in (("bias", bias), ("batch_first", batch_first)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    if not isinstance(bidirectional, bool):
        raise TypeError(
            f"bidirectional should be of type bool, got: {type(bidirectional).__name__}"
        )
    for name, value in (
        ("input_size", input_size),
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
        ("proj_size", proj_size),
    ):
        if name == "input_size" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if name != "proj_size" and value <= 0:
            raise ValueError(f"{name} must be greater than zero, got {value}")
    if proj_size < 0:
        raise ValueError(
            f"proj_size should be a positive integer or zero to disable projections, "
            f"got {proj_size}"
        )
    if proj_size >= hidden_size:
        raise ValueError(
            f"proj_size has to be smaller than hidden_size, got proj_size={proj_size} and "
            f"hidden_size={hidden_size}"
        )


def _option_pairs(options: Any) -> dict[str, Any]:
    """``options`` (``(name, value)`` pairs or a mapping) as a dict, or a ``TypeError``."""
    if isinstance(options, Mapping):
        return dict(options)
    try:
        pairs = dict(options)
    except (TypeError, ValueError):
        raise TypeError(
            f"options must be (name, value) pairs or a mapping, got {options!r}"
        ) from None
    return pairs


@dataclasses.dataclass(frozen=True)
class Layout:
    """Sizes of a stacked recurrent layer, as PyTorch's constructor arguments name them.

    ``family`` is a registered family's name (``'lstm'``) or a family value (one with options
    bound, ``MINGRU.with_options(candidate="g")``); ``options`` the family's own options as
    ``(name, value)`` pairs (ConvLSTM's ``kernel_size``, minGRU's ``candidate``). An option the
    family does not declare, or a value it does not allow, is a ``ValueError`` listing the
    allowed ones; options not given take the family's defaults.
    """

    family: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    bidirectional: bool = False
    proj_size: int = 0
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # The family's defaults fill in what was not given, and an alias becomes the family's
        # own name, so equal layers compare equal.
        spec = families.get(self.family)
        given = _option_pairs(self.options)
        spec.check_options(given)
        merged = dict(spec.options) | dict(spec.settings) | given
        object.__setattr__(self, "family", spec.name)
        object.__setattr__(self, "options", tuple(sorted(merged.items())))

    @property
    def spec(self) -> Family:
        """The family, with its run-time options (minGRU's ``candidate``) bound."""
        return families.get(self.family).with_options(**dict(self.options))

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def sizes(self, layer: int = 0) -> Sizes:
        """The :class:`~jaxrnn.families.base.Sizes` of ``layer`` (its input is the layer
        below's output, both directions)."""
        width = self.input_size if layer == 0 else self.output_size * self.num_directions
        return Sizes(width, self.hidden_size, self.bias, self.proj_size, self.options)

    @property
    def output_size(self) -> int:
        """Width of ``h`` (and of each direction's output): ``proj_size`` if set, else hidden."""
        return self.spec.output_size(self.sizes(0))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter name with its shape, in PyTorch's state_dict order."""
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            layer_shapes = self.spec.param_shapes(self.sizes(layer))
            for suffix in ("", "_reverse")[: self.num_directions]:
                for name, shape in layer_shapes.items():
                    shapes[f"{name}_l{layer}{suffix}"] = shape
        return shapes


def layout_of(family: str | Family, params: Mapping[str, Array]) -> Layout:
    """Read a :class:`Layout` off PyTorch-named ``params`` and check every key and shape.

    Raises ``TypeError``/``ValueError`` naming the missing, unknown or misshaped key.
    """
    spec = families.get(family)
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a mapping of PyTorch state_dict names to arrays, "
            f"got {type(params).__name__}"
        )
    found = [m.groups() for m in map(_NAME.fullmatch, params) if m]
    if not any(layer == "0" and not reverse for _, layer, reverse in found):
        raise ValueError(
            "params hold no layer-0 parameters; expected PyTorch state_dict names "
            f"(weight_ih_l0, weight_hh_l0, ...), got keys {sorted(params)}"
        )
    try:
        sizes = spec.read_sizes(layer_params(params, 0, reverse=False))
    except KeyError as e:
        raise ValueError(
            f"params of a {spec.name} have no {e.args[0]}_l0; got keys {sorted(params)}"
        ) from None
    except ValueError as e:
        raise ValueError(f"params of a {spec.name}: {e}") from None
    # Depth and directions are read off every well-formed name, so that a key missing from
    # the middle (weight_ih_l1, ..._reverse) is reported as missing; bias is whichever
    # reading accounts for every key.
    candidates = [
        Layout(
            family=spec.name,
            input_size=sizes.input_size,
            hidden_size=sizes.hidden_size,
            num_layers=1 + max(int(layer) for _, layer, _ in found),
            bias=bias,
            bidirectional=any(reverse for _, _, reverse in found),
            proj_size=sizes.proj_size,
            options=tuple((dict(sizes.options) | dict(spec.settings)).items()),
        )
        for bias in (True, False)
    ]
    layout = next((c for c in candidates if set(c.shapes()) == set(params)), None)
    if layout is None:
        layout = candidates[0 if any("bias" in name for name, _, _ in found) else 1]
    expected = layout.shapes()
    missing = [k for k in expected if k not in params]
    unknown = [k for k in params if k not in expected]
    if missing or unknown:
        raise ValueError(
            f"params do not form a {layout.num_layers}-layer "
            f"{'bidirectional ' if layout.bidirectional else ''}{spec.name} "
            f"(read off its layer-0 weights and the keys present): missing keys {missing}, "
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
    layout: Layout,
    recurrent_init: RecurrentInit = "uniform",
    dtype: Any = jnp.float32,
) -> Array:
    """One parameter as the family initialises it (PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``).

    With ``recurrent_init="orthogonal"`` each ``(H, ·)`` gate block of a 2-D ``weight_hh`` is
    instead a (semi-)orthogonal matrix (Saxe et al. 2014), which keeps the recurrent Jacobian
    well-conditioned at initialization.
    """
    if recurrent_init not in ("uniform", "orthogonal"):
        raise ValueError(
            f"recurrent_init must be 'uniform' or 'orthogonal', got {recurrent_init!r}"
        )
    hidden = layout.hidden_size
    if recurrent_init == "orthogonal":
        recurrent = layout.spec.param_shapes(layout.sizes(0)).get("weight_hh")
        if recurrent is None or len(recurrent) != 2:
            what = "none" if recurrent is None else f"one of shape {recurrent}"
            raise ValueError(
                "recurrent_init='orthogonal' makes each gate block of a 2-D weight_hh "
                f"orthogonal; the {layout.spec.name} family has {what} (use 'uniform')"
            )
    if recurrent_init == "orthogonal" and name.startswith("weight_hh") and len(shape) == 2:
        keys = jax.random.split(key, shape[0] // hidden)
        blocks = [jax.nn.initializers.orthogonal()(k, (hidden, shape[1]), dtype) for k in keys]
        return jnp.concatenate(blocks, axis=0)
    match = _NAME.fullmatch(name)
    layer = int(match.group(2)) if match else 0
    base = match.group(1) if match else name
    spec = layout.spec
    if spec.init_layer is not None:
        # Drawn together from this key; init_params hands every name of a layer-direction
        # its first name's key, so the pieces fit (LRU's gamma and eigenvalues).
        return spec.init_layer(key, layout.sizes(layer), dtype)[base]
    return spec.init(key, base, shape, layout.sizes(layer), dtype)


def layer_key_index(shapes: Mapping[str, Any]) -> list[int]:
    """For each name, the index of its layer-direction's first name (whose key it shares)."""
    first: dict[str, int] = {}
    index = []
    for i, name in enumerate(shapes):
        match = _NAME.fullmatch(name)
        group = name[len(match.group(1)) :] if match else name
        index.append(first.setdefault(group, i))
    return index


def init_params(
    key: Array,
    layout: Layout,
    *,
    recurrent_init: RecurrentInit = "uniform",
    dtype: Any = jnp.float32,
) -> dict[str, Array]:
    """Fresh PyTorch-named parameters for ``layout`` (see :func:`init_param`)."""
    layout.spec.check_sizes(layout.sizes(0))
    shapes = layout.shapes()
    keys = list(jax.random.split(key, len(shapes)))
    if layout.spec.init_layer is not None:
        keys = [keys[i] for i in layer_key_index(shapes)]
    return {
        name: init_param(
            k, shape, name=name, layout=layout, recurrent_init=recurrent_init, dtype=dtype
        )
        for k, (name, shape) in zip(keys, shapes.items(), strict=True)
    }
