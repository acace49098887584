"""What a recurrence family is: a small frozen value the layers read, and the math it shares.

A :class:`Family` names everything the layers above need to run one recurrence, the way an
optax transformation is a tiny tuple of pure functions: its per-layer parameter names and
shapes, how they start, its carry, its pure reference step, and which kernels can run it.
Nothing above :mod:`jaxrnn.families` names a family; it reads the spec.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Mapping[str, Array]
Carry = Any
Cell = Callable[[Params, Carry, Array], tuple[Carry, Array]]


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The sizes of one layer-direction, as the family's constructor arguments name them.

    ``options`` holds a family's own shape options as sorted ``(name, value)`` pairs (for
    example ConvLSTM's ``kernel_size``), so that the value stays hashable.
    """

    input_size: int
    hidden_size: int
    bias: bool = True
    proj_size: int = 0
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)


class Linear(NamedTuple):
    """A family whose state update is linear in the state, ``h_t = a_t * h_{t-1} + b_t``.

    ``coefficients(params, xs (T, B, I)) -> (a, b)``, each ``(T, B, N)`` (``a`` may be
    ``(N,)``, constant in time); ``readout(params, hs (T, B, N), xs) -> ys (T, B, H)``. The
    ``"parallel"`` and ``"sequential"`` kernels (:mod:`jaxrnn.kernels.parallel`) run it.
    """

    coefficients: Callable[[Params, Array], tuple[Array, Array]]
    readout: Callable[[Params, Array, Array], Array]
    # (params, xs (T, B, I), starts (T, B) bool) -> (a, b): the coefficients with the segment
    # starts folded in (a = 0 there), for a family whose segment start is a step of its own
    # (Family.start_step); None: a start restarts the ordinary step from the reset state.
    start_coefficients: Callable[[Params, Array, Array], tuple[Array, Array]] | None = None


class Fused(NamedTuple):
    """A family's fused loop: ``forward`` and a hand-written ``backward`` for
    :mod:`jaxrnn.kernels.fused`.

    ``forward(p, xs, carry, valid, mask, *, reverse, unroll, mm_dtype, save)`` returns
    ``(final carry, ys, residuals or None)``; ``backward(p, xs, carry, valid, mask, residuals,
    d_final, d_ys, *, reverse, unroll, mm_dtype)`` returns ``(d_params, d_xs, d_carry)``.
    ``valid`` is ``(T, B)`` bool or ``None``; ``mask`` the ``(B, P)`` recurrent dropout mask
    or ``None``.
    """

    forward: Callable[..., tuple[Carry, Array, Any]]
    backward: Callable[..., tuple[dict[str, Array], Array, Carry]]


def default_init(key: Array, name: str, shape: tuple[int, ...], sizes: Sizes, dtype) -> Array:
    """PyTorch's initialisation of every recurrent parameter: ``U(-1/sqrt(H), 1/sqrt(H))``."""
    bound = 1.0 / math.sqrt(sizes.hidden_size)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def hidden_of(carry: Carry) -> Array:
    """The part of a carry that recurrent dropout acts on: the carry, or ``h`` of ``(h, ...)``."""
    return carry[0] if isinstance(carry, tuple | list) else carry


def mask_hidden(cell: Cell) -> Callable[[Params, Carry, Array, Array], tuple[Carry, Array]]:
    """``cell`` with ``h_{t-1}`` multiplied by a recurrent dropout mask where it enters.

    Exact for cells that read ``h_{t-1}`` only through ``weight_hh`` (Elman, LSTM); a family
    that reads it elsewhere too (GRU) gives its own ``dropped_cell``.
    """

    def dropped(params: Params, carry: Carry, x: Array, mask: Array) -> tuple[Carry, Array]:
        if isinstance(carry, tuple | list):
            return cell(params, (carry[0] * mask, *carry[1:]), x)
        return cell(params, carry * mask, x)

    return dropped


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
    """One recurrence, as the layers above see it.

    Attributes:
        name: the registry name (``"gru"``).
        cell: the pure reference step ``cell(params, carry, x) -> (carry, y)`` on one layer's
            parameters (names without the ``_l{k}`` suffix), ``x (B, *feature)``.
        param_shapes: ``Sizes -> {name: shape}`` for one layer-direction, in state_dict order.
        read_sizes: ``(layer-0 params) -> Sizes`` (``bias`` may be left ``True``; it is read
            off the names), the inverse of ``param_shapes`` used to check user params.
        state_shapes: ``(Sizes, batch_shape) -> tuple of shapes``, one per carry component,
            e.g. LSTM ``((B, P), (B, H))``. One component: the carry is that array; more: a
            tuple. The final state the layer returns stacks each component over layers and
            directions (``(D*L, B, ...)``), named by ``state_names``.
        state_names: names of the returned final states (``("h_n", "c_n")``).
        kernels: the kernels this family offers, fastest first (``backend="auto"`` tries
            them in this order; ``"scan"`` runs any family).
        init: ``(key, name, shape, Sizes, dtype) -> Array`` for each parameter.
        feature_ndim: how many trailing axes of ``x`` are features (1; ConvLSTM 3).
        dropped_cell: the reference step with a recurrent dropout mask,
            ``(params, carry, x, mask) -> (carry, y)``; default masks ``h`` where it enters.
        fused: the family's fused loops (:class:`Fused`), if it offers ``"fused"``.
        state_dtype: ``dtype -> dtype`` of the carry (LRU: complex).
        check_sizes: raises ``ValueError`` for sizes the family cannot take.
        options: the defaults of the family's own shape options (``Sizes.options``).
        init_layer: ``(key, Sizes, dtype) -> {name: Array}`` for families whose parameters
            are drawn together (LRU's ``gamma`` depends on its eigenvalues); overrides
            ``init``.
        linear: the family's linear-recurrence form (:class:`Linear`), if it has one.
        recurrent_dropout: whether variational dropout on ``h`` applies (a recurrence
            through ``weight_hh``).
        start_step: for a family whose segment start is a step of its own (RG-LRU, as in
            Griffin): ``(params, carry, x, start (B,) bool) -> (carry, y)``, where ``start``
            marks the sequences whose segment starts at this step (the first step without
            ``hx``, and every reset); there the step does not read the carry. ``None``: a
            segment start is the ordinary step from the reset (zero) carry.
        choices: the allowed values of each option that takes one of a few
            (``(("candidate", ("linear", "g")),)``); other options are checked by
            ``check_sizes``.
        configure: ``options -> Family``: the family with its run-time options bound (minGRU's
            ``candidate``); ``None`` if no option changes how it runs. Use
            :meth:`with_options`, which checks the options and caches the result.
        settings: the run-time options this value is bound to (set by :meth:`with_options`).
    """

    name: str
    cell: Cell
    param_shapes: Callable[[Sizes], dict[str, tuple[int, ...]]]
    read_sizes: Callable[[Params], Sizes]
    state_shapes: Callable[[Sizes, tuple[int, ...]], tuple[tuple[int, ...], ...]]
    state_names: tuple[str, ...] = ("h_n",)
    kernels: tuple[str, ...] = ("scan",)
    init: Callable[[Array, str, tuple[int, ...], Sizes, Any], Array] = default_init
    feature_ndim: int = 1
    dropped_cell: Callable[[Params, Carry, Array, Array], tuple[Carry, Array]] | None = None
    fused: Fused | None = None
    state_dtype: Callable[[Any], Any] = lambda dtype: dtype
    check_sizes: Callable[[Sizes], None] = lambda sizes: None
    options: tuple[tuple[str, Any], ...] = ()
    init_layer: Callable[[Array, Sizes, Any], dict[str, Array]] | None = None
    linear: Linear | None = None
    recurrent_dropout: bool = True
    start_step: Callable[[Params, Carry, Array, Array], tuple[Carry, Array]] | None = None
    choices: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    configure: Callable[[dict[str, Any]], Family] | None = None
    settings: tuple[tuple[str, Any], ...] = ()

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise a ``ValueError`` for an option name this family does not declare, or a value
        outside the allowed ones, listing what is allowed."""
        allowed = dict(self.options)
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            declared = ", ".join(f"{n} (default {v!r})" for n, v in self.options) or "none"
            raise ValueError(
                f"unknown option(s) {unknown} for the {self.name} family; its options are: "
                f"{declared}"
            )
        for name, values in self.choices:
            if name in options and options[name] not in values:
                raise ValueError(
                    f"option {name} of the {self.name} family must be one of {values}, got "
                    f"{options[name]!r}"
                )

    def with_options(self, **options: Any) -> Family:
        """This family with its run-time options bound, e.g.
        ``families.get("mingru").with_options(candidate="g")``; options that only shape the
        parameters (ConvLSTM's ``kernel_size``) are accepted and belong in ``Layout``. The
        same options give the same value (one compiled loop). Unknown names or values are a
        ``ValueError`` listing the allowed ones.

        Examples:
            >>> from jaxrnn import families
            >>> g = families.get("mingru").with_options(candidate="g")
            >>> g.settings, g is families.get("mingru").with_options(candidate="g")
            ((('candidate', 'g'),), True)
        """
        self.check_options(options)
        base = _BASES.get(id(self), self)
        runtime = {n: v for n, v in options.items() if n in dict(base.choices)}
        bound = dict(base.options) | dict(self.settings) | runtime
        bound = {n: v for n, v in bound.items() if n in dict(base.choices)}
        if base.configure is None or bound == {n: dict(base.options)[n] for n in bound}:
            return base
        key = (id(base), tuple(sorted(bound.items())))
        if key not in _CONFIGURED:
            family = dataclasses.replace(
                base.configure(bound), settings=tuple(sorted(bound.items()))
            )
            _CONFIGURED[key] = family
            _BASES[id(family)] = base
        return _CONFIGURED[key]

    def output_size(self, sizes: Sizes) -> int:
        """Width of one direction's output ``y``: ``proj_size`` if set, else ``hidden_size``."""
        return sizes.proj_size or sizes.hidden_size

    def step_with_mask(self, params: Params, carry: Carry, x: Array, mask: Array | None):
        """The reference step, with ``h_{t-1}`` dropped by ``mask`` (``(B, P)``) if given."""
        if mask is None:
            return self.cell(params, carry, x)
        dropped = self.dropped_cell or mask_hidden(self.cell)
        return dropped(params, carry, x, mask)


# Families with run-time options bound (Family.with_options), and the family each came from.
_CONFIGURED: dict[tuple[int, tuple[tuple[str, Any], ...]], Family] = {}
_BASES: dict[int, Family] = {}


@functools.cache
def custom(cell: Cell) -> Family:
    """A user cell as a family of its own: it runs on the generic ``"scan"`` kernel only.

    Its parameters and carry are the caller's business (:func:`jaxrnn.functional.stack`).
    Cached on the cell, so the same cell keeps one compiled loop.
    """

    def unknown(*_: Any) -> Any:
        raise ValueError("a user cell has no parameter layout; call jaxrnn.stack with its params")

    return Family(
        name=f"custom:{getattr(cell, '__name__', type(cell).__name__)}",
        cell=cell,
        param_shapes=unknown,
        read_sizes=unknown,
        state_shapes=unknown,
    )


# --- shared math ---------------------------------------------------------------------------


def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    """``x @ weight.T + bias``, PyTorch's ``(out, in)`` weight layout: ``(B, in) -> (B, out)``."""
    y = x @ weight.T
    return y if bias is None else y + bias


def gate_preactivations(params: Params, h: Array, x: Array) -> tuple[Array, Array]:
    """The input and recurrent affine maps of a step, each ``(B, G*H)`` with its bias added."""
    return (
        linear(x, params["weight_ih"], params.get("bias_ih")),
        linear(h, params["weight_hh"], params.get("bias_hh")),
    )


def affine_shapes(gates: int, sizes: Sizes) -> dict[str, tuple[int, ...]]:
    """PyTorch's ``weight_ih``/``weight_hh``/``bias_*`` shapes for ``gates`` stacked gates."""
    g = gates * sizes.hidden_size
    shapes: dict[str, tuple[int, ...]] = {
        "weight_ih": (g, sizes.input_size),
        "weight_hh": (g, sizes.proj_size or sizes.hidden_size),
    }
    if sizes.bias:
        shapes |= {"bias_ih": (g,), "bias_hh": (g,)}
    return shapes


def affine_sizes(gates: int) -> Callable[[Params], Sizes]:
    """Read ``input_size`` and ``hidden_size`` off ``weight_ih`` of ``gates`` stacked gates."""

    def read(params: Params) -> Sizes:
        w = params["weight_ih"]
        if getattr(w, "ndim", None) != 2 or w.shape[0] % gates:
            raise ValueError(
                f"weight_ih must be 2-D with a first axis divisible by {gates} "
                f"(gates x hidden_size), got shape {getattr(w, 'shape', None)}"
            )
        return Sizes(int(w.shape[1]), int(w.shape[0]) // gates)

    return read


# PyTorch's own families keep PyTorch's message for a projection they do not take.
_TORCH_WITHOUT_PROJECTION = ("rnn_tanh", "rnn_relu", "gru")


def projection_free(family: str) -> Callable[[Sizes], None]:
    """A ``check_sizes`` for a family without ``proj_size`` (``torch.nn.LSTM``'s projection
    of ``h``): any ``proj_size > 0`` is a ``ValueError`` naming ``family``."""

    def check(sizes: Sizes) -> None:
        if not sizes.proj_size:
            return
        if family in _TORCH_WITHOUT_PROJECTION:
            what = "proj_size argument is only supported for LSTM, not RNN or GRU"
        else:
            what = (
                f"proj_size (an output projection of h, as in torch.nn.LSTM) is not "
                f"supported by the {family} family"
            )
        raise ValueError(f"{what}, got proj_size={sizes.proj_size}")

    return check


def no_projection(sizes: Sizes) -> None:
    """A ``check_sizes`` refusing ``proj_size > 0``; prefer :func:`projection_free`, whose
    message names the family."""
    if sizes.proj_size:
        raise ValueError(
            "proj_size (an output projection of h, as in torch.nn.LSTM) is not supported by "
            f"this family, got proj_size={sizes.proj_size}"
        )


def vector_state(sizes: Sizes, batch_shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """One ``(B, H)`` state (Elman, GRU)."""
    return ((*batch_shape, sizes.hidden_size),)


# Fused-loop helpers, shared by the families' hand-written loops.


def sigmoid(z: Array) -> Array:
    """``sigmoid`` as one ``tanh``: XLA's CPU ``logistic`` on gate slices in a loop costs more."""
    return 0.5 * jnp.tanh(0.5 * z) + 0.5


def hold(v: Array | None, new: Array, old: Array) -> Array:
    """``new`` where the step is valid (``v`` is ``(B,)`` bool), else ``old``."""
    return new if v is None else jnp.where(v[:, None], new, old)


def shifted(seq: Array, first: Array, reverse: bool) -> Array:
    """The carry *before* each step: ``seq`` moved one step along the loop, ``first`` in front."""
    if reverse:
        return jnp.concatenate([seq[1:], first[None]], axis=0)
    return jnp.concatenate([first[None], seq[:-1]], axis=0)


def contract(spec: str, a: Array, b: Array, dtype) -> Array:
    """``jnp.einsum(spec, a, b)``; with a ``dtype``, the operands are cast to it and the
    product is accumulated and returned in their own promoted dtype (bf16 in, float32 sums)."""
    if dtype is None:
        return jnp.einsum(spec, a, b)
    out = jnp.result_type(a, b)
    return jnp.einsum(spec, a.astype(dtype), b.astype(dtype), preferred_element_type=out)


def matmul(a: Array, b: Array, dtype) -> Array:
    """``a @ b`` for ``a (..., K)`` and ``b (K, N)``, cast as in :func:`contract`."""
    return a @ b if dtype is None else contract("...k,kn->...n", a, b, dtype)


def cast(w: Array, dtype) -> Array:
    """A weight cast once, before the loop, to the matmul dtype (if any)."""
    return w if dtype is None else w.astype(dtype)


def masked_outputs(hs: Array, valid: Array | None) -> Array:
    """Outputs with padded steps zeroed: ``hs (T, B, H)``, ``valid (T, B)``."""
    return hs if valid is None else jnp.where(valid[..., None], hs, jnp.zeros_like(hs))
