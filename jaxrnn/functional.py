"""Stacked, bidirectional recurrent layers as pure functions over PyTorch-named parameters.

:func:`layer` runs any registered family (:mod:`jaxrnn.families`); :func:`rnn`, :func:`lstm`,
:func:`gru` take the state_dict of the matching ``torch.nn`` module (see
:mod:`jaxrnn.interop`) and return what it returns, in the same shapes and order.
:func:`stack` is the machinery under them and also takes a user's own cell.

Keyword options shared by every layer (:class:`Options`):

* ``dropout``: between layers, on every layer's output but the last, as PyTorch (with a ``key``).
* ``input_dropout``, ``recurrent_dropout``: variational dropout (Gal & Ghahramani 2016): one
  mask per sequence, layer and direction, shared by all steps, on each layer's input and on
  ``h`` where it enters the recurrence (with a ``key``; see :mod:`jaxrnn.dropout`).
* ``unroll``: ``lax.scan``'s unroll; ``"auto"`` (the default) takes it with the kernel, from
  a wisdom table measured on the machine or the platform's rules (:func:`jaxrnn.kernels.choose`,
  ``python -m jaxrnn.tune``). An int or bool is used as given.
* ``remat``: a chunk length, or ``True`` for ``ceil(√T)``: checkpoints each layer's loop in
  chunks, activation memory ``O(T / chunk + chunk)`` steps instead of ``O(T)``.
* ``matmul_dtype``: e.g. ``jnp.bfloat16``: matmul operands in that dtype, sums in ``x``'s
  (fused kernel only).
* ``backend``: ``"auto"`` (the fastest kernel that runs the call), ``"fused"``, ``"scan"``,
  or a plugin's (``"onednn"``); see :mod:`jaxrnn.kernels`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from jax.typing import DTypeLike
from typing_extensions import Unpack

from jaxrnn import families, kernels
from jaxrnn.dropout import check_rate, dropout_mask
from jaxrnn.families.base import Array, Carry, Cell, Family, Params, hidden_of
from jaxrnn.families.convlstm import CONVLSTM
from jaxrnn.families.gru import GRU
from jaxrnn.families.layernorm_lstm import LAYERNORM_LSTM
from jaxrnn.families.lru import LRU
from jaxrnn.families.lstm import LSTM
from jaxrnn.families.mingru import MINGRU
from jaxrnn.families.minlstm import MINLSTM
from jaxrnn.families.rglru import RGLRU
from jaxrnn.kernels import wisdom
from jaxrnn.params import Layout, layer_params, layout_of


class OptionKwargs(TypedDict, total=False):
    """The keyword options of every layer function (see :class:`Options`)."""

    dropout: float
    input_dropout: float
    recurrent_dropout: float
    unroll: int | bool | str
    remat: int | bool | None
    matmul_dtype: DTypeLike | None
    backend: str


@dataclasses.dataclass(frozen=True)
class Options:
    """How a layer runs, as one frozen value: dropout rates and loop settings.

    Every layer function takes these as keywords (``**options``); ``Options.of(**kwargs)``
    checks them and rejects unknown names.

    Args:
        dropout: between layers, on every layer's output but the last, as PyTorch (runs
            only with a ``key``).
        input_dropout: variational dropout (Gal & Ghahramani 2016) on each layer's input:
            one mask per sequence, layer and direction, shared by all steps.
        recurrent_dropout: variational dropout on ``h`` where it enters the recurrence.
        unroll: ``lax.scan``'s unroll.
        remat: a chunk length, or ``True`` for ``ceil(√T)``: checkpoints each layer's loop
            in chunks, activation memory ``O(T / chunk + chunk)`` steps instead of ``O(T)``.
        matmul_dtype: e.g. ``jnp.bfloat16``: matmul operands in that dtype, sums in ``x``'s
            (fused kernel only).
        backend: ``"auto"`` (the fastest kernel that runs the call), ``"fused"``,
            ``"scan"``, ``"parallel"`` or a plugin's (``"onednn"``); see
            :mod:`jaxrnn.kernels`.
    """

    dropout: float = 0.0
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    unroll: int | bool | str = "auto"
    remat: int | bool | None = None
    matmul_dtype: Any = None
    backend: str = "auto"

    @classmethod
    def of(cls, **kwargs: Unpack[OptionKwargs]) -> Options:
        unknown = set(kwargs) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        options = cls(**kwargs)  # type: ignore[arg-type]
        for name in ("dropout", "input_dropout", "recurrent_dropout"):
            check_rate(name, getattr(options, name))
        kernels.remat_chunk(options.remat, 1)
        kernels.check_unroll(options.unroll)
        if not isinstance(options.backend, str):
            raise TypeError(f"backend must be a string, got {type(options.backend).__name__}")
        return dataclasses.replace(options, matmul_dtype=check_matmul_dtype(options.matmul_dtype))


def check_matmul_dtype(matmul_dtype: Any) -> Any:
    """``matmul_dtype`` as a floating-point ``jnp.dtype`` (or ``None``); a clear error otherwise."""
    if matmul_dtype is None:
        return None
    try:
        dtype = jnp.dtype(matmul_dtype)
    except TypeError as e:
        raise TypeError(
            f"matmul_dtype must be a dtype such as jnp.bfloat16, got {matmul_dtype!r}"
        ) from e
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"matmul_dtype must be a floating-point dtype, got {dtype}")
    return dtype


def check_lengths(lengths: Any, batch: int, steps: int) -> Array:
    """Validate ``lengths`` against a ``(T, B)`` batch and return it as an int32 ``(B,)`` array.

    Values are range-checked whenever they are concrete. Under ``jax.jit`` they are clamped
    to ``[1, T]`` (a defined result, never garbage); wrap the function in
    ``checkify.checkify(f, errors=checkify.user_checks)`` to get an error instead.
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
    if values is not None:
        if values.size and (values.min() < 1 or values.max() > steps):
            raise ValueError(
                f"lengths must lie in [1, T] = [1, {steps}], got min {values.min()} "
                f"and max {values.max()}"
            )
        return lengths.astype(jnp.int32)
    _runtime_check(
        jnp.all((lengths >= 1) & (lengths <= steps)),
        f"lengths must lie in [1, T] = [1, {steps}]",
    )
    return jnp.clip(lengths, 1, steps).astype(jnp.int32)


def _runtime_check(ok: Array, message: str) -> None:
    """A check on traced values: an error under ``checkify.checkify``, a no-op otherwise."""
    checkify.debug_check(ok, message)


def check_resets(resets: Any, steps: int, batch: int | None) -> Array:
    """``resets`` as a ``(T, B)`` (``(T,)`` unbatched) bool array, or a clear error."""
    if not hasattr(resets, "shape"):
        resets = np.asarray(resets)
    want = (steps,) if batch is None else (steps, batch)
    if tuple(resets.shape) != want:
        raise ValueError(
            f"resets must have shape (T, B) = {want} (time-major after batch_first), got "
            f"shape {tuple(resets.shape)}"
        )
    if resets.dtype != jnp.bool_:
        raise TypeError(f"resets must be a bool array, got dtype {resets.dtype}")
    return jnp.asarray(resets)


def _dropout(key: Array, x: Array, rate: float) -> Array:
    if rate >= 1.0:
        return jnp.zeros_like(x)
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def _reverse_resets(resets: Array) -> Array:
    """Resets for the reverse direction: it restarts at each segment's last step, that is,
    before step ``t`` when ``t + 1`` starts a new segment."""
    return jnp.concatenate([resets[1:], jnp.zeros_like(resets[:1])], axis=0)


def _as_family(cell: Cell | Family | str) -> Family:
    if isinstance(cell, Family | str):
        return families.get(cell)
    if not callable(cell):
        raise TypeError(f"cell must be a callable, a Family or a family name, got {cell!r}")
    return families.custom(cell)


def stack(
    cell: Cell | Family | str,
    layers: Sequence[Sequence[Params]],
    x: Array,
    carries: Sequence[Sequence[Carry]],
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    fresh_start: bool = False,
    **options: Unpack[OptionKwargs],
) -> tuple[Array, list[list[Carry]]]:
    """Run ``cell`` as a stacked, optionally bidirectional layer: ``x (T, B, I) -> (T, B, D*H)``.

    Each layer reads the concatenated outputs of both directions of the layer below.

    Args:
        cell: a family (or its name) or any cell ``cell(params, carry, x) -> (carry, y)``.
        layers: ``layers[k][d]`` holds the cell parameters of layer ``k`` and direction
            ``d`` (``d = 1``, if present, runs backwards in time).
        x: ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first``.
        carries: ``carries[k][d]`` is the initial carry of layer ``k``, direction ``d``.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics.
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the carry restarts from
            zeros before each step where true (an episode start); the reverse direction
            restarts at each segment's end.
        batch_first: ``x``, ``resets`` and the output are batch-major.
        key: a PRNG key; dropout runs only with one.
        fresh_start: the carries are not a previous call's state, so each direction's first
            step (the reverse direction's: each sequence's last valid step) starts a
            segment; this matters only to a family whose segment start is a step of its own
            (RG-LRU), and :func:`layer` sets it when ``hx`` is ``None``.
        **options: the layer options of :class:`Options`.

    Returns:
        ``(output, carries)``: the top layer's output ``(T, B, D*H)`` and the final
            carries, nested like ``carries``.

    Examples:
        >>> import jax.numpy as jnp, jaxrnn
        >>> def cell(p, h, x):
        ...     h = jnp.tanh(x @ p["w"] + h)
        ...     return h, h
        >>> y, [[h]] = jaxrnn.stack(cell, [[{"w": jnp.ones((3, 2))}]], jnp.ones((5, 4, 3)),
        ...                         [[jnp.zeros((4, 2))]])
        >>> y.shape, h.shape
        ((5, 4, 2), (4, 2))
    """
    family = _as_family(cell)
    opts = Options.of(**options)
    if not isinstance(batch_first, bool):
        raise TypeError(f"batch_first should be of type bool, got: {type(batch_first).__name__}")
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
    if x.ndim != 2 + family.feature_ndim:
        raise ValueError(
            f"x must be {2 + family.feature_ndim}-D (T, B, features...) or (B, T, ...), "
            f"got shape {x.shape}"
        )
    if batch_first:
        x = jnp.swapaxes(x, 0, 1)
        if resets is not None and getattr(resets, "ndim", 0) == 2:
            resets = jnp.swapaxes(jnp.asarray(resets), 0, 1)
    steps, batch = x.shape[0], x.shape[1]
    if steps == 0:
        raise ValueError(f"x must have at least one time step, got T = 0 (shape {x.shape})")
    valid = None
    if lengths is not None:
        lengths = check_lengths(lengths, batch, steps)
        valid = jnp.arange(steps, dtype=jnp.int32)[:, None] < lengths[None, :]
    if resets is not None:
        resets = check_resets(resets, steps, batch)
    if not isinstance(fresh_start, bool):
        raise TypeError(f"fresh_start must be a bool, got {type(fresh_start).__name__}")
    starts = None  # each direction's first step, where the segment starts (RG-LRU)
    if fresh_start and family.start_step is not None:
        t = jnp.arange(steps, dtype=jnp.int32)[:, None]
        last = steps - 1 if lengths is None else lengths[None, :] - 1
        starts = (t == 0, t == last)
        resets = jnp.zeros((steps, batch), bool) if resets is None else resets
    recurrent = opts.recurrent_dropout > 0.0 and key is not None
    if opts.recurrent_dropout > 0.0 and not family.recurrent_dropout:
        raise ValueError(
            f"recurrent_dropout drops h where it enters the recurrent weights; the "
            f"{family.name} family has no such recurrence (use dropout between layers or "
            "input_dropout)"
        )
    call = kernels.Call(
        lengths=lengths is not None,
        resets=resets is not None,
        recurrent_dropout=recurrent,
        matmul_dtype=opts.matmul_dtype,
        forward_mode=kernels.forward_mode(layers, x, carries),
        dtype=x.dtype,
        batch=batch,
        hidden=hidden_of(carries[0][0]).shape[-1],
        steps=steps,
        features=tuple(x.shape[2:]),
        layers=len(layers),
        directions=directions,
        training=kernels.reverse_mode(layers, x, carries),
    )
    if "auto" in (opts.backend, opts.unroll) and wisdom.autotune():
        _autotune(family, call, layers, x, carries)
    choice = kernels.choose(family, call, opts.backend, opts.unroll)
    kernel = choice.kernel

    if opts.dropout > 0.0 and key is not None:
        keys = jax.random.split(key, max(len(layers) - 1, 1))
    variational = (opts.input_dropout > 0.0 or recurrent) and key is not None
    if variational:
        # fold_in keeps the between-layer dropout's keys what they are without this option
        vkeys = jax.random.split(jax.random.fold_in(key, 1), (len(layers), directions))  # type: ignore[arg-type]
    between = opts.dropout > 0.0 and key is not None and len(layers) > 1
    if kernel.run_stack is not None and not (variational or between or opts.remat):
        try:
            x, finals = kernel.run_stack(family, layers, x, carries)
        except (RuntimeError, ValueError):
            if opts.backend != "auto":
                raise
            # under "auto" the layer-by-layer loop below runs it, falling back to XLA there
        else:
            return (jnp.swapaxes(x, 0, 1) if batch_first else x), finals
    finals = []
    for k, (layer, layer_carries) in enumerate(zip(layers, carries, strict=True)):
        outs, layer_finals = [], []
        for d, (p, c) in enumerate(zip(layer, layer_carries, strict=True)):
            xd, mask = x, None
            if variational:
                k_in, k_rec = jax.random.split(vkeys[k, d])
                if opts.input_dropout > 0.0:
                    xd = x * dropout_mask(k_in, x.shape[1:], opts.input_dropout, x.dtype)
                if recurrent:
                    h = hidden_of(c)
                    mask = dropout_mask(k_rec, h.shape, opts.recurrent_dropout, h.dtype)
            r = None if resets is None else (_reverse_resets(resets) if d == 1 else resets)
            if starts is not None and r is not None:
                r = r | jnp.broadcast_to(starts[d], r.shape)
            # A reset restarts from the family's initial (zero) carry, not from hx: so a
            # stream cut into chunks, each starting from the last one's state, equals one call.
            init = None if r is None else jax.tree.map(jnp.zeros_like, c)
            c, y = kernels.run(
                kernel, family, p, xd, c, init=init, valid=valid,
                resets=r, mask=mask, reverse=d == 1, unroll=choice.unroll, remat=opts.remat,
                matmul_dtype=opts.matmul_dtype,
            )  # fmt: skip
            outs.append(y)
            layer_finals.append(c)
        finals.append(layer_finals)
        x = outs[0] if directions == 1 else jnp.concatenate(outs, axis=-1)
        if opts.dropout > 0.0 and key is not None and k < len(layers) - 1:
            x = _dropout(keys[k], x, opts.dropout)
    if batch_first:
        x = jnp.swapaxes(x, 0, 1)
    return x, finals


_AUTOTUNED: set[str] = set()


def _autotune(family: Family, call: kernels.Call, layers: Any, x: Array, carries: Any) -> None:
    """Time every candidate for ``call``'s signature and record the winner (JAXRNN_AUTOTUNE=1).

    Runs outside the traced computation: each candidate is compiled ahead of time on
    abstract shapes and run on concrete random inputs of the call's shapes and dtypes.
    """
    platform = jax.default_backend()
    signature = repr((str(wisdom.path()), sorted(wisdom.signature(family.name, call).items())))
    if signature in _AUTOTUNED or wisdom.find(family.name, call, platform) is not None:
        return
    _AUTOTUNED.add(signature)  # once per process, even if the table cannot be written
    plain = call._replace(lengths=False, resets=False, recurrent_dropout=False)
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (layers, x, carries))
    leaves, tree = jax.tree.flatten(shapes)
    rng = np.random.default_rng(0)
    # numpy arrays, not jax ones: creating jax arrays here would be staged into the trace
    concrete = tree.unflatten([rng.uniform(-0.5, 0.5, a.shape).astype(a.dtype) for a in leaves])
    runs = {}
    for name, unroll in kernels.candidates(family, plain, platform):

        def forward(args, name=name, unroll=unroll):
            out, _ = stack(
                family, *args, backend=name, unroll=unroll, matmul_dtype=call.matmul_dtype
            )
            return jnp.sum(out.real if jnp.iscomplexobj(out) else out)

        f = jax.grad(forward) if call.training else forward
        compiled = jax.jit(f).lower(shapes).compile()
        runs[wisdom.candidate(name, unroll)] = functools.partial(compiled, concrete)
    wisdom.record(family.name, call, platform, wisdom.measure(runs, reps=3))


# --- layers over PyTorch-named parameters --------------------------------------------------


def _check_input(x: Any, layout: Layout, family: Family) -> tuple[Array, bool]:
    """Return ``x`` as an array and whether it came batched."""
    if not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"input must be a floating-point array, got dtype {x.dtype}")
    rank = 1 + family.feature_ndim
    if x.ndim not in (rank, rank + 1):
        feat = "I" if family.feature_ndim == 1 else "Hs, Ws, C"
        raise ValueError(
            f"input must be (T, B, {feat}), (B, T, {feat}) with batch_first, or unbatched "
            f"(T, {feat}); got shape {x.shape}"
        )
    if x.shape[-1] != layout.input_size:
        raise ValueError(
            f"input has feature size {x.shape[-1]} but {_input_weight(family, layout)} expects "
            f"input_size={layout.input_size} (input shape {x.shape})"
        )
    return x, x.ndim == rank + 1


def _input_weight(family: Family, layout: Layout) -> str:
    """The layer-0 parameter that reads the input (``weight_ih_l0``; the LRU's ``B_re_l0``):
    the first whose shape changes with ``input_size``."""
    sizes = layout.sizes(0)
    wider = dataclasses.replace(sizes, input_size=sizes.input_size + 1)
    shapes, other = family.param_shapes(sizes), family.param_shapes(wider)
    return next((f"{n}_l0" for n in shapes if shapes[n] != other.get(n)), "the first layer")


def _initial_state(
    family: Family, layout: Layout, hx: Any, batch_shape: tuple[int, ...], batched: bool, dtype
) -> tuple[list[list[Carry]], Any]:
    """``hx`` (stacked over layers x directions, or ``None``) split into per-layer carries."""
    n, ld = layout.num_layers * layout.num_directions, layout.num_directions
    shapes = [(n, *s) for s in family.state_shapes(layout.sizes(0), batch_shape)]
    names = family.state_names
    want = [s if batched else (s[0], *s[2:]) for s in shapes]
    if hx is None:
        state = [jnp.zeros(s, family.state_dtype(dtype)) for s in shapes]
    else:
        parts = [hx] if len(shapes) == 1 and hasattr(hx, "shape") else hx
        if not isinstance(parts, tuple | list) or len(parts) != len(shapes):
            described = (
                f"one array of shape {tuple(hx.shape)}"
                if hasattr(hx, "shape")
                else f"a {type(hx).__name__}" + (f" of {len(hx)}" if hasattr(hx, "__len__") else "")
            )
            labels = [n.replace("_n", "_0") for n in names]
            expected = (
                f"hx as one array of shape {want[0]}"
                if len(want) == 1
                else f"hx=({', '.join(labels)}) with shapes " + " and ".join(str(s) for s in want)
            )
            raise TypeError(f"{family.name} expects {expected}, got {described}")
        state = []
        for name, h, s in zip(names, parts, want, strict=True):
            label = "hx" if len(shapes) == 1 else name.replace("_n", "_0")
            if not hasattr(h, "shape"):
                raise TypeError(f"{label} must be an array of shape {s}, got {type(h).__name__}")
            if tuple(h.shape) != s:
                raise ValueError(f"{label} should have shape {s}, got {tuple(h.shape)}")
            if not jnp.issubdtype(h.dtype, jnp.inexact):
                raise TypeError(f"{label} must be a floating-point array, got dtype {h.dtype}")
            if jnp.issubdtype(h.dtype, jnp.complexfloating) and not jnp.issubdtype(
                family.state_dtype(jnp.float32), jnp.complexfloating
            ):
                raise TypeError(
                    f"{label} must be a real floating-point array (the {family.name} state is "
                    f"real), got dtype {h.dtype}"
                )
            h = jnp.asarray(h)
            state.append(h if batched else h[:, None])
        dtype = jnp.result_type(dtype, *state)
        state = [h.astype(family.state_dtype(dtype)) for h in state]
    one = len(shapes) == 1
    carries = [
        [state[0][k * ld + d] if one else tuple(h[k * ld + d] for h in state) for d in range(ld)]
        for k in range(layout.num_layers)
    ]
    return carries, dtype


def layer(
    family: str | Family,
    params: Mapping[str, Array],
    x: Array,
    hx: Any = None,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    **options: Unpack[OptionKwargs],
) -> tuple[Array, Any]:
    """Any registered family as a stacked layer: ``x (T, B, I) -> (output, final state)``.

    Args:
        family: a family name (``'gru'``; see :func:`jaxrnn.families.names`) or spec.
        params: PyTorch-named parameters (``weight_ih_l0``, ...); depth, directions, bias and
            sizes are read off them.
        x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)``
            (ConvLSTM: ``(T, B, Hs, Ws, C)``).
        hx: the initial state, stacked over layers and directions like PyTorch's ``h_0``
            (``(D*L, B, H)``, or a tuple such as ``(h_0, c_0)``); zeros if ``None``.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics (each
            sequence stops at its length, padded outputs are zero, the reverse direction starts
            at each sequence's last valid step).
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the carry restarts from
            zeros before each step where true (an episode start; ``hx`` is the state before
            step 0 only, so a stream cut into chunks equals one call).
            The reverse direction restarts at each segment's last step.
        batch_first: ``x`` (and ``resets``, the output) batch-major.
        key: a PRNG key; dropout runs only with one.
        **options: see :class:`Options` (``dropout``, ``input_dropout``, ``recurrent_dropout``,
            ``unroll``, ``remat``, ``matmul_dtype``, ``backend``).

    Returns:
        ``(output, state)``: ``output (T, B, D*H_out)`` (batch-major with ``batch_first``)
            and the final state, stacked like ``hx`` (``h_n (D*L, B, H)``, or a tuple such
            as ``(h_n, c_n)``).

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout("gru", 3, 8, num_layers=2))
        >>> y, h_n = jaxrnn.layer("gru", p, jax.numpy.ones((5, 4, 3)))
        >>> y.shape, h_n.shape
        ((5, 4, 8), (2, 4, 8))
    """
    if not isinstance(batch_first, bool):
        raise TypeError(f"batch_first should be of type bool, got: {type(batch_first).__name__}")
    spec = families.get(family)
    layout = layout_of(spec, params)
    x, batched = _check_input(x, layout, spec)
    if lengths is not None and not batched:
        raise ValueError("lengths needs a batched input (T, B, I); got an unbatched (T, I)")
    if not batched:
        x = x[:, None] if not batch_first else x[None]
        if resets is not None:
            resets = jnp.asarray(check_resets(resets, x.shape[1 if batch_first else 0], None))
            resets = resets[None] if batch_first else resets[:, None]
    batch_shape = tuple(x.shape[:1] if batch_first else x.shape[1:2]) + tuple(x.shape[2:-1])
    # A step's output has the promoted dtype of input, weights and state; the carry must
    # start in it too (e.g. bfloat16 input with float32 weights), or the scan rejects it.
    dtype = jnp.result_type(x, *params.values())
    carries, _ = _initial_state(spec, layout, hx, batch_shape, batched, dtype)
    layers = [
        [layer_params(params, k, reverse=d == 1) for d in range(layout.num_directions)]
        for k in range(layout.num_layers)
    ]
    out, finals = stack(
        spec, layers, x, carries, lengths=lengths, resets=resets, batch_first=batch_first,
        key=key, fresh_start=hx is None, **options,
    )  # fmt: skip
    flat = [c for layer in finals for c in layer]
    if len(spec.state_names) == 1:
        state: Any = jnp.stack(flat)
    else:
        state = tuple(jnp.stack(parts) for parts in zip(*flat, strict=True))
    if not batched:
        out = out[:, 0] if not batch_first else out[0]
        state = jax.tree.map(lambda s: s[:, 0], state)
    return out, state


def rnn(
    params: Mapping[str, Array],
    x: Array,
    hx: Array | None = None,
    *,
    nonlinearity: Literal["tanh", "relu"] = "tanh",
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    **options: Unpack[OptionKwargs],
) -> tuple[Array, Array]:
    """Elman RNN, as ``torch.nn.RNN``: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``.

    Args:
        params: ``torch.nn.RNN``'s state_dict (``weight_ih_l0``, ``weight_hh_l0``,
            ``bias_ih_l0``, ``bias_hh_l0``, ...; ``_reverse`` for the backward direction).
        x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)``.
        hx: the initial state ``h_0 (D*L, B, H)``; zeros if ``None``.
        nonlinearity: ``"tanh"`` or ``"relu"``, as ``torch.nn.RNN``'s.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics (each
            sequence stops at its length, padded outputs are zero, the reverse direction
            starts at each sequence's last valid step).
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the state restarts from
            zeros before each step where true.
        batch_first: ``x``, ``resets`` and the output are batch-major.
        key: a PRNG key; dropout runs only with one.
        **options: the layer options of :class:`Options` (``dropout``, ``input_dropout``,
            ``recurrent_dropout``, ``unroll``, ``remat``, ``matmul_dtype``, ``backend``).

    Returns:
        ``(output (T, B, D*H), h_n (D*L, B, H))``, as ``torch.nn.RNN`` returns them.

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout("rnn_tanh", 3, 8, bidirectional=True))
        >>> y, h_n = jaxrnn.rnn(p, jax.numpy.ones((5, 4, 3)))
        >>> y.shape, h_n.shape
        ((5, 4, 16), (2, 4, 8))
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    return layer(
        f"rnn_{nonlinearity}", params, x, hx, lengths=lengths, resets=resets,
        batch_first=batch_first, key=key, **options,
    )  # fmt: skip


def lstm(
    params: Mapping[str, Array],
    x: Array,
    hx: tuple[Array, Array] | None = None,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    **options: Unpack[OptionKwargs],
) -> tuple[Array, tuple[Array, Array]]:
    """LSTM, as ``torch.nn.LSTM``: ``x (T, B, I) -> (output, (h_n, c_n))``.

    ``output`` is ``(T, B, D*P)``, ``h_n`` ``(D*L, B, P)`` and ``c_n`` ``(D*L, B, H)``, where
    ``P`` is ``proj_size`` when ``weight_hr_l*`` are present and ``H`` otherwise.

    Args:
        params: ``torch.nn.LSTM``'s state_dict (``weight_ih_l0``, ``weight_hh_l0``,
            ``bias_ih_l0``, ``bias_hh_l0``, with ``proj_size`` ``weight_hr_l0``, ...).
        x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)``.
        hx: the initial state ``(h_0 (D*L, B, P), c_0 (D*L, B, H))``; zeros if ``None``.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics (each
            sequence stops at its length, padded outputs are zero, the reverse direction
            starts at each sequence's last valid step).
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the state restarts from
            zeros before each step where true.
        batch_first: ``x``, ``resets`` and the output are batch-major.
        key: a PRNG key; dropout runs only with one.
        **options: the layer options of :class:`Options` (``dropout``, ``input_dropout``,
            ``recurrent_dropout``, ``unroll``, ``remat``, ``matmul_dtype``, ``backend``).

    Returns:
        ``(output (T, B, D*P), (h_n (D*L, B, P), c_n (D*L, B, H)))``, as ``torch.nn.LSTM``
            returns them.

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout('lstm', 3, 8, proj_size=4))
        >>> y, (h_n, c_n) = jaxrnn.lstm(p, jax.numpy.ones((5, 4, 3)))
        >>> y.shape, h_n.shape, c_n.shape
        ((5, 4, 4), (1, 4, 4), (1, 4, 8))
    """
    return layer(
        LSTM, params, x, hx, lengths=lengths, resets=resets, batch_first=batch_first,
        key=key, **options,
    )  # fmt: skip


def gru(
    params: Mapping[str, Array],
    x: Array,
    hx: Array | None = None,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    **options: Unpack[OptionKwargs],
) -> tuple[Array, Array]:
    """GRU, as ``torch.nn.GRU``: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``.

    Args:
        params: ``torch.nn.GRU``'s state_dict (``weight_ih_l0``, ``weight_hh_l0``,
            ``bias_ih_l0``, ``bias_hh_l0``, ...).
        x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)``.
        hx: the initial state ``h_0 (D*L, B, H)``; zeros if ``None``.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics (each
            sequence stops at its length, padded outputs are zero, the reverse direction
            starts at each sequence's last valid step).
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the state restarts from
            zeros before each step where true.
        batch_first: ``x``, ``resets`` and the output are batch-major.
        key: a PRNG key; dropout runs only with one.
        **options: the layer options of :class:`Options` (``dropout``, ``input_dropout``,
            ``recurrent_dropout``, ``unroll``, ``remat``, ``matmul_dtype``, ``backend``).

    Returns:
        ``(output (T, B, D*H), h_n (D*L, B, H))``, as ``torch.nn.GRU`` returns them.

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout("gru", 3, 8))
        >>> y, h_n = jaxrnn.gru(p, jax.numpy.ones((4, 5, 3)), batch_first=True)
        >>> y.shape, h_n.shape
        ((4, 5, 8), (1, 4, 8))
    """
    return layer(
        GRU, params, x, hx, lengths=lengths, resets=resets, batch_first=batch_first,
        key=key, **options,
    )  # fmt: skip


def layernorm_lstm(
    params: Mapping[str, Array],
    x: Array,
    hx: tuple[Array, Array] | None = None,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    **options: Unpack[OptionKwargs],
) -> tuple[Array, tuple[Array, Array]]:
    """Layer-normalised LSTM (:mod:`jaxrnn.families.layernorm_lstm`, Ba et al. 2016):
    ``x (T, B, I) -> (output (T, B, D*H), (h_n, c_n) each (D*L, B, H))``.

    Args:
        params: the family's parameters under their state_dict names (from
            :func:`jaxrnn.params.init_params` or a checkpoint).
        x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)``.
        hx: the initial state ``(h_0, c_0)``, each ``(D*L, B, H)``; zeros if ``None``.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics (each
            sequence stops at its length, padded outputs are zero, the reverse direction
            starts at each sequence's last valid step).
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the state restarts from
            zeros before each step where true.
        batch_first: ``x``, ``resets`` and the output are batch-major.
        key: a PRNG key; dropout runs only with one.
        **options: the layer options of :class:`Options` (``dropout``, ``input_dropout``,
            ``recurrent_dropout``, ``unroll``, ``remat``, ``matmul_dtype``, ``backend``).

    Returns:
        ``(output (T, B, D*H), (h_n, c_n))``, each state ``(D*L, B, H)``.

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout("layernorm_lstm", 3, 8))
        >>> y, (h_n, c_n) = jaxrnn.layernorm_lstm(p, jax.numpy.ones((5, 4, 3)))
        >>> y.shape, c_n.shape
        ((5, 4, 8), (1, 4, 8))
    """
    return layer(
        LAYERNORM_LSTM, params, x, hx, lengths=lengths, resets=resets,
        batch_first=batch_first, key=key, **options,
    )  # fmt: skip


def convlstm(
    params: Mapping[str, Array],
    x: Array,
    hx: tuple[Array, Array] | None = None,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    **options: Unpack[OptionKwargs],
) -> tuple[Array, tuple[Array, Array]]:
    """Convolutional LSTM (:mod:`jaxrnn.families.convlstm`, Shi et al. 2015):
    ``x (T, B, Hs, Ws, C_in) -> (output (T, B, Hs, Ws, D*C), (h_n, c_n))``, each state
    ``(D*L, B, Hs, Ws, C)``.

    Args:
        params: the family's parameters under their state_dict names (from
            :func:`jaxrnn.params.init_params` or a checkpoint).
        x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)`` (here
            ``(T, B, Hs, Ws, C_in)``).
        hx: the initial state ``(h_0, c_0)``, each ``(D*L, B, Hs, Ws, C)``; zeros if ``None``.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics (each
            sequence stops at its length, padded outputs are zero, the reverse direction
            starts at each sequence's last valid step).
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the state restarts from
            zeros before each step where true.
        batch_first: ``x``, ``resets`` and the output are batch-major.
        key: a PRNG key; dropout runs only with one.
        **options: the layer options of :class:`Options` (``dropout``, ``input_dropout``,
            ``recurrent_dropout``, ``unroll``, ``remat``, ``matmul_dtype``, ``backend``).

    Returns:
        ``(output (T, B, Hs, Ws, D*C), (h_n, c_n))``, each state ``(D*L, B, Hs, Ws, C)``.

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> layout = Layout("convlstm", 2, 4, options=(("kernel_size", (3, 3)),))
        >>> p = init_params(jax.random.key(0), layout)
        >>> y, (h_n, c_n) = jaxrnn.convlstm(p, jax.numpy.ones((5, 1, 8, 8, 2)))
        >>> y.shape, h_n.shape
        ((5, 1, 8, 8, 4), (1, 1, 8, 8, 4))
    """
    return layer(
        CONVLSTM, params, x, hx, lengths=lengths, resets=resets, batch_first=batch_first,
        key=key, **options,
    )  # fmt: skip


def mingru(
    params: Mapping[str, Array],
    x: Array,
    hx: Array | None = None,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    candidate: Literal["linear", "g"] = "linear",
    **options: Unpack[OptionKwargs],
) -> tuple[Array, Array]:
    """minGRU (Feng et al. 2024; :mod:`jaxrnn.families.mingru`):
    ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``.

    A linear recurrence: ``backend="auto"`` runs it as one ``lax.scan`` over precomputed
    coefficients on CPU and as an associative scan (``"parallel"``) on accelerators.

    Args:
        params: the family's parameters under their state_dict names (from
            :func:`jaxrnn.params.init_params` or a checkpoint).
        x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)``.
        hx: the initial state ``h_0 (D*L, B, H)``; zeros if ``None``.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics (each
            sequence stops at its length, padded outputs are zero, the reverse direction
            starts at each sequence's last valid step).
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the state restarts from
            zeros before each step where true.
        batch_first: ``x``, ``resets`` and the output are batch-major.
        key: a PRNG key; dropout runs only with one.
        candidate: ``"linear"`` (the paper's §3.1, ``h~ = W_h x``) or ``"g"`` (its log-space
            appendix, ``h~ = g(W_h x)``, what ``mingru-pytorch`` runs).
        **options: the layer options of :class:`Options` (``dropout``, ``input_dropout``,
            ``recurrent_dropout``, ``unroll``, ``remat``, ``matmul_dtype``, ``backend``).

    Returns:
        ``(output (T, B, D*H), h_n (D*L, B, H))``.

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout('mingru', 3, 8, num_layers=2))
        >>> y, h_n = jaxrnn.mingru(p, jax.numpy.ones((5, 4, 3)))
        >>> y.shape, h_n.shape
        ((5, 4, 8), (2, 4, 8))
    """
    return layer(
        MINGRU.with_options(candidate=candidate), params, x, hx, lengths=lengths,
        resets=resets, batch_first=batch_first, key=key, **options,
    )  # fmt: skip


def minlstm(
    params: Mapping[str, Array],
    x: Array,
    hx: Array | None = None,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    candidate: Literal["linear", "g"] = "linear",
    **options: Unpack[OptionKwargs],
) -> tuple[Array, Array]:
    """minLSTM (Feng et al. 2024; :mod:`jaxrnn.families.minlstm`):
    ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``. As :func:`mingru`.

    Args:
        params: the family's parameters under their state_dict names (from
            :func:`jaxrnn.params.init_params` or a checkpoint).
        x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)``.
        hx: the initial state ``h_0 (D*L, B, H)``; zeros if ``None``.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics (each
            sequence stops at its length, padded outputs are zero, the reverse direction
            starts at each sequence's last valid step).
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the state restarts from
            zeros before each step where true.
        batch_first: ``x``, ``resets`` and the output are batch-major.
        key: a PRNG key; dropout runs only with one.
        candidate: ``"linear"`` (the paper's §3.1, ``h~ = W_h x``) or ``"g"`` (its log-space
            appendix, ``h~ = g(W_h x)``, what ``mingru-pytorch`` runs).
        **options: the layer options of :class:`Options` (``dropout``, ``input_dropout``,
            ``recurrent_dropout``, ``unroll``, ``remat``, ``matmul_dtype``, ``backend``).

    Returns:
        ``(output (T, B, D*H), h_n (D*L, B, H))``.

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout('minlstm', 3, 8, bidirectional=True))
        >>> y, h_n = jaxrnn.minlstm(p, jax.numpy.ones((5, 4, 3)))
        >>> y.shape, h_n.shape
        ((5, 4, 16), (2, 4, 8))
    """
    return layer(
        MINLSTM.with_options(candidate=candidate), params, x, hx, lengths=lengths,
        resets=resets, batch_first=batch_first, key=key, **options,
    )  # fmt: skip


def lru(
    params: Mapping[str, Array],
    x: Array,
    hx: Array | None = None,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    **options: Unpack[OptionKwargs],
) -> tuple[Array, Array]:
    """Linear Recurrent Unit (Orvieto et al. 2023; :mod:`jaxrnn.families.lru`):
    ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, N))``; the state ``h_n`` is complex,
    ``N`` the layout option ``state_size`` (default ``H``). As :func:`mingru`.

    Args:
        params: the family's parameters under their state_dict names (from
            :func:`jaxrnn.params.init_params` or a checkpoint).
        x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)``.
        hx: the initial state ``h_0 (D*L, B, N)``, complex; zeros if ``None``.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics (each
            sequence stops at its length, padded outputs are zero, the reverse direction
            starts at each sequence's last valid step).
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the state restarts from
            zeros before each step where true.
        batch_first: ``x``, ``resets`` and the output are batch-major.
        key: a PRNG key; dropout runs only with one.
        **options: the layer options of :class:`Options` (``dropout``, ``input_dropout``,
            ``recurrent_dropout``, ``unroll``, ``remat``, ``matmul_dtype``, ``backend``).

    Returns:
        ``(output (T, B, D*H), h_n (D*L, B, N))``, ``h_n`` complex.

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout('lru', 3, 8, options=(('state_size', 16),)))
        >>> y, h_n = jaxrnn.lru(p, jax.numpy.ones((5, 4, 3)))
        >>> y.shape, h_n.shape, h_n.dtype
        ((5, 4, 8), (1, 4, 16), dtype('complex64'))
    """
    return layer(
        LRU, params, x, hx, lengths=lengths, resets=resets, batch_first=batch_first,
        key=key, **options,
    )  # fmt: skip


def rglru(
    params: Mapping[str, Array],
    x: Array,
    hx: Array | None = None,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    batch_first: bool = False,
    key: Array | None = None,
    **options: Unpack[OptionKwargs],
) -> tuple[Array, Array]:
    """Real-Gated LRU of Griffin/Hawk (De et al. 2024; :mod:`jaxrnn.families.rglru`):
    ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``. As :func:`mingru`.

    Args:
        params: the family's parameters under their state_dict names (from
            :func:`jaxrnn.params.init_params` or a checkpoint).
        x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)``.
        hx: the initial state ``h_0 (D*L, B, H)``; zeros if ``None``.
        lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics (each
            sequence stops at its length, padded outputs are zero, the reverse direction
            starts at each sequence's last valid step).
        resets: ``(T, B)`` bool (``(B, T)`` with ``batch_first``): the state restarts from
            zeros before each step where true.
        batch_first: ``x``, ``resets`` and the output are batch-major.
        key: a PRNG key; dropout runs only with one.
        **options: the layer options of :class:`Options` (``dropout``, ``input_dropout``,
            ``recurrent_dropout``, ``unroll``, ``remat``, ``matmul_dtype``, ``backend``).

    Returns:
        ``(output (T, B, D*H), h_n (D*L, B, H))``.

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout('rglru', 3, 8))
        >>> y, h_n = jaxrnn.rglru(p, jax.numpy.ones((5, 4, 3)))
        >>> y.shape, h_n.shape
        ((5, 4, 8), (1, 4, 8))
    """
    return layer(
        RGLRU, params, x, hx, lengths=lengths, resets=resets, batch_first=batch_first,
        key=key, **options,
    )  # fmt: skip


# --- streaming ------------------------------------------------------------------------------


def init_state(
    family: str | Family, params: Mapping[str, Array], batch: int, dtype: Any = None
) -> Any:
    """The zero state of a stacked layer for ``batch`` sequences, stacked like ``hx``.

    For images (ConvLSTM) use :func:`step` with ``state=None`` instead.

    Args:
        family: a family name or spec.
        params: the layer's PyTorch-named parameters.
        batch: the number of sequences ``B``.
        dtype: the state's dtype; defaults to the parameters'.

    Returns:
        ``(D*L, B, H)`` zeros, or a tuple such as ``(h, c)`` of them (complex for the LRU).

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout('lstm', 3, 8, num_layers=2))
        >>> h, c = jaxrnn.init_state('lstm', p, batch=4)
        >>> h.shape, c.shape
        ((2, 4, 8), (2, 4, 8))
    """
    spec = families.get(family)
    layout = layout_of(spec, params)
    dtype = jnp.result_type(*params.values()) if dtype is None else dtype
    n = layout.num_layers * layout.num_directions
    shapes = spec.state_shapes(layout.sizes(0), (batch,))
    state = tuple(jnp.zeros((n, *s), spec.state_dtype(dtype)) for s in shapes)
    return state[0] if len(state) == 1 else state


def step(
    family: str | Family,
    params: Mapping[str, Array],
    x: Array,
    state: Any = None,
    *,
    resets: Array | None = None,
    **options: Unpack[OptionKwargs],
) -> tuple[Array, Any]:
    """One time step of a unidirectional stack: ``x (B, I), state -> (y (B, H_out), state)``.

    Stepping a sequence equals one :func:`layer` call over it, for acting in RL, online
    filtering and generation; jit it once and every step reuses the compiled call.

    Args:
        family: a family name or spec.
        params: the layer's PyTorch-named parameters (unidirectional).
        x: one time step ``(B, I)``.
        state: stacked like ``hx`` (:func:`init_state`); ``None``: zeros, and the step
            starts a sequence.
        resets: ``(B,)`` bool: the sequences that start a new segment at this step (as
            :func:`layer`'s ``resets``; for the RG-LRU a segment start is a step of its own,
            so pass ``resets`` at a sequence's first step when ``state`` is not ``None``).
        **options: the layer options of :class:`Options`.

    Returns:
        ``(y, state)``: the top layer's output ``(B, H_out)`` and the next state.

    Examples:
        >>> import jax, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> p = init_params(jax.random.key(0), Layout('gru', 3, 8))
        >>> step = jax.jit(lambda x, s: jaxrnn.step('gru', p, x, s))
        >>> state = jaxrnn.init_state('gru', p, batch=4)
        >>> for t in range(3):
        ...     y, state = step(jax.numpy.ones((4, 3)), state)
        >>> y.shape, state.shape
        ((4, 8), (1, 4, 8))
    """
    spec = families.get(family)
    resets = check_step(spec, layout_of(spec, params).bidirectional, x, resets)
    out, state = layer(
        spec, params, x[None], state, resets=None if resets is None else resets[None], **options
    )
    return out[0], state


def one_step(
    call: Callable[..., tuple[Array, Any]],
    x: Array,
    state: Any,
    resets: Array | None,
    batch_first: bool,
    **kwargs: Any,
) -> tuple[Array, Any]:
    """``call`` (a layer over a sequence, as the linen and nnx modules are) on the one step
    ``x (B, ...)``: a length-1 sequence in, its only output step out."""
    if resets is not None:
        resets = resets[:, None] if batch_first else resets[None]
    out, state = call(x[:, None] if batch_first else x[None], state, resets=resets, **kwargs)
    return (out[:, 0] if batch_first else out[0]), state


def check_step(spec: Family, bidirectional: bool, x: Any, resets: Any) -> Array | None:
    """The checks of one time step (:func:`step`, and the linen/nnx ``step`` methods): a
    unidirectional layer, ``x (B, features...)`` and ``resets`` ``(B,)`` or ``None``."""
    if bidirectional:
        raise ValueError(
            "step runs one time step forward; a bidirectional layer needs the whole sequence "
            "(its reverse direction starts at the end): call the layer on it instead"
        )
    if not hasattr(x, "ndim") or x.ndim != 1 + spec.feature_ndim:
        raise ValueError(
            f"step takes one time step x of shape (B, features...), "
            f"got shape {getattr(x, 'shape', None)}"
        )
    if resets is None:
        return None
    if getattr(resets, "shape", None) != x.shape[:1]:
        raise ValueError(
            f"resets of one step must have shape (B,) = {x.shape[:1]}, got shape "
            f"{getattr(resets, 'shape', None)}"
        )
    return jnp.asarray(resets)
