"""A stack of recurrent layers through cuDNN, differentiable by ``jax.custom_vjp``.

torch's parameters are packed into cuDNN's flat weight space in JAX (one concatenation), so
autodiff through the packing turns cuDNN's weight-space gradient back into torch's names.
The custom_vjp runs cuDNN's training forward (which fills the reserve space, an explicit
output), then ``cudnnRNNBackwardData_v8`` and ``cudnnRNNBackwardWeights_v8``.

Algorithm (``algo="auto"``), as PyTorch's ``aten/src/ATen/native/cudnn/RNN.cpp`` (get_algo,
read for cuDNN 9) chooses it: a projected LSTM and packed (variable-length) input always run
the standard algorithm. Otherwise, for any data type but float64, the persistent small-H
kernel (``PERSIST_STATIC_SMALL_H``) when H <= 384 (RNN) or H <= 192 (LSTM, GRU) in the
forward and H <= 256 / H <= 128 in the backward; only for float16 input does torch also try
``PERSIST_STATIC`` (one layer, unidirectional, H <= 1024, H and I multiples of 128, and a
per-device batch-size table). So for float32 torch runs small-H or standard, never static.
Here the training forward and its backward share one reserve space, so one algorithm serves
both: the backward thresholds for a differentiated call, the forward ones for an inference
call. Where cuDNN reports NOT_SUPPORTED for a persistent algorithm, the standard one runs.

Precision: float32 data with cuDNN's default math (TF32 tensor cores allowed on Ampere and
newer, as torch with ``allow_tf32=True``, its default for cuDNN); ``CUDNN_FMA_MATH`` (full
float32) when ``jax_default_matmul_precision`` is ``"highest"``/``"float32"`` at trace time
or ``precision="float32"``. bfloat16 data runs tensor-op math with float32 accumulation.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Mapping
from functools import partial
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn_cudnn._layout import CELL, GATES, Shape, canonical, pack, queried

Array = jax.Array

MODES = tuple(CELL)
ALGOS = {"standard": 0, "persist_static": 1, "persist_static_small_h": 3}
PRECISIONS = ("default", "tf32", "float32")
_DTYPES = {jnp.dtype(jnp.float32): 0, jnp.dtype(jnp.bfloat16): 1}
_FULL = ("highest", "float32", "tensorfloat32_off")
_VMAP = "sequential"
_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


class _Cfg(NamedTuple):
    mode: str
    shape: Shape
    algo: str
    math: int
    dtype: int
    has_lengths: bool


def _small_h(mode: str, hidden: int, training: bool) -> bool:
    if mode in ("rnn_tanh", "rnn_relu"):
        return hidden <= (256 if training else 384)
    return hidden <= (128 if training else 192)


def choose_algo(shape: Shape, *, training: bool, has_lengths: bool, algo: str = "auto") -> int:
    """The cudnnRNNAlgo_t asked for (before cuDNN's NOT_SUPPORTED fallback)."""
    if algo != "auto":
        return ALGOS[algo]
    if shape.proj or has_lengths:
        return ALGOS["standard"]
    if _small_h(shape.mode, shape.hidden, training):
        return ALGOS["persist_static_small_h"]
    return ALGOS["standard"]


def plan(cfg: _Cfg, t: int, b: int, training: bool) -> tuple[int, int, int, int]:
    """(algo, workspace bytes, reserve bytes, weight bytes) for one call, from cuDNN."""
    from jaxrnn_cudnn._lib import last_error, library

    lib = library()
    s = cfg.shape
    algo = choose_algo(s, training=training, has_lengths=cfg.has_lengths, algo=cfg.algo)
    out = (ctypes.c_int64 * 4)()
    rc = lib.jaxrnn_cudnn_plan(
        CELL[s.mode], int(s.bidir), s.layers, s.input, s.hidden, s.proj, algo, cfg.math,
        cfg.dtype, t, b, int(training), out,
    )  # fmt: skip
    if rc < 0:
        raise RuntimeError(f"cuDNN cannot run this RNN: {last_error(lib)}")
    return int(out[0]), int(out[1]), int(out[2]), int(out[3])


def _attrs(cfg: _Cfg, algo: int) -> dict[str, Any]:
    s = cfg.shape
    return dict(
        mode=np.int32(CELL[s.mode]), bidir=np.int32(s.bidir), layers=np.int32(s.layers),
        input=np.int32(s.input), hidden=np.int32(s.hidden), proj=np.int32(s.proj),
        algo=np.int32(algo), math=np.int32(cfg.math), dtype=np.int32(cfg.dtype),
        has_lengths=np.int32(cfg.has_lengths),
    )  # fmt: skip


def _forward(cfg: _Cfg, training: bool, x, h0, c0, w, lengths):
    t, b, _ = x.shape
    algo, _, reserve, _ = plan(cfg, t, b, training)
    s = cfg.shape
    shapes = [
        jax.ShapeDtypeStruct((t, b, s.dirs * s.out), x.dtype),
        jax.ShapeDtypeStruct(h0.shape, x.dtype),
        jax.ShapeDtypeStruct(c0.shape, x.dtype),
        jax.ShapeDtypeStruct((max(reserve, 1) if training else 1,), jnp.uint8),
    ]
    call = jax.ffi.ffi_call("jaxrnn_cudnn_forward", shapes, vmap_method=_VMAP)
    return call(x, h0, c0, w, lengths, training=np.int32(training), **_attrs(cfg, algo))


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _core(cfg: _Cfg, x, h0, c0, w, lengths):
    y, hy, cy, _ = _forward(cfg, False, x, h0, c0, w, lengths)
    return y, hy, cy


def _core_fwd(cfg: _Cfg, x, h0, c0, w, lengths):
    y, hy, cy, reserve = _forward(cfg, True, x, h0, c0, w, lengths)
    return (y, hy, cy), (x, h0, c0, w, lengths, y, reserve)


def _core_bwd(cfg: _Cfg, res, cotangents):
    x, h0, c0, w, lengths, y, reserve = res
    dy, dhy, dcy = cotangents
    t, b, _ = x.shape
    algo = plan(cfg, t, b, True)[0]
    shapes = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in (x, h0, c0, w, reserve)]
    call = jax.ffi.ffi_call(
        "jaxrnn_cudnn_backward", shapes, vmap_method=_VMAP, input_output_aliases={9: 4}
    )
    dx, dh0, dc0, dw, _ = call(
        x, h0, c0, w, lengths, y, dy.astype(x.dtype), dhy.astype(x.dtype),
        dcy.astype(x.dtype), reserve, **_attrs(cfg, algo),
    )  # fmt: skip
    return dx, dh0, dc0, dw, None


_core.defvjp(_core_fwd, _core_bwd)


def split_state_dict(params: Mapping[str, Any]) -> tuple[int, bool, bool]:
    """``(layers, bidirectional, has_bias)`` of a ``torch.nn.LSTM/GRU/RNN`` state_dict."""
    seen: dict[tuple[int, int], set[str]] = {}
    for key in params:
        m = _NAME.match(key)
        if m is None:
            raise ValueError(
                f"unknown parameter name {key!r} (expected torch.nn names such as "
                "'weight_ih_l0', 'bias_hh_l1_reverse')"
            )
        seen.setdefault((int(m[2]), int(bool(m[3]))), set()).add(m[1])
    if not seen:
        raise ValueError("params is empty")
    layers = max(k[0] for k in seen) + 1
    bidir = any(k[1] for k in seen)
    want = {(k, d) for k in range(layers) for d in range(2 if bidir else 1)}
    if set(seen) != want:
        raise ValueError(
            f"every layer 0..{layers - 1} needs the same directions; got {sorted(seen)}"
        )
    kinds = {frozenset(v) for v in seen.values()}
    if len(kinds) != 1:
        raise ValueError(f"every layer and direction needs the same parameter names, got {kinds}")
    names = next(iter(kinds))
    for need in ("weight_ih", "weight_hh"):
        if need not in names:
            raise ValueError(f"missing {need}_l*")
    if ("bias_ih" in names) != ("bias_hh" in names):
        raise ValueError("give both bias_ih and bias_hh or neither")
    return layers, bidir, "bias_ih" in names


def _dtype_code(dtype: Any, what: str) -> int:
    dt = jnp.dtype(dtype)
    if dt not in _DTYPES:
        raise TypeError(f"{what} must be float32 or bfloat16 for the cuDNN kernels, got {dt}")
    return _DTYPES[dt]


def _math(precision: str | None, dtype: int) -> int:
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be None or one of {PRECISIONS}, got {precision!r}")
    if dtype == 1:
        return 2  # bfloat16 data: tensor-op math, float32 accumulation
    if precision is None or precision == "default":
        # read at trace time, so jax.default_matmul_precision(...) contexts count
        configured = getattr(jax.config, "jax_default_matmul_precision", None)
        full = configured is not None and str(configured).lower() in _FULL
        return 1 if full else 0
    return 1 if precision == "float32" else 0


def rnn(
    mode: str,
    params: Mapping[str, Any],
    x: Any,
    hx: Any = None,
    *,
    lengths: Any = None,
    batch_first: bool = False,
    algo: str = "auto",
    precision: str | None = None,
    layout: str = "auto",
) -> tuple[Array, Any]:
    """A whole ``torch.nn.LSTM/GRU/RNN`` stack in one cuDNN call.

    Args:
      mode: ``"lstm"``, ``"gru"``, ``"rnn_tanh"`` or ``"rnn_relu"``.
      params: the module's state_dict names (``weight_ih_l0``, ..., ``_reverse``;
        ``weight_hr_l*`` for a projected LSTM; biases optional).
      x: ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``), float32 or bfloat16.
      hx: ``h0 (D*L, B, O)``, or ``(h0, c0)`` with ``c0 (D*L, B, H)`` for an LSTM; zeros if
        None. ``O`` is ``proj_size`` or ``H``.
      lengths: optional ``(B,)`` int valid lengths in ``[1, T]``, as a packed sequence:
        outputs past a sequence's end are zero, final states are taken at its last valid
        step, the reverse direction starts there. The handler copies them to the host and
        synchronizes the stream (cuDNN's data descriptors need them there).
      algo: ``"auto"`` (torch's choice), ``"standard"``, ``"persist_static"`` or
        ``"persist_static_small_h"``.
      precision: None/``"default"`` (TF32 allowed unless ``jax_default_matmul_precision``
        says ``"highest"``/``"float32"``), ``"tf32"`` or ``"float32"``.
      layout: ``"auto"`` (cuDNN's queried weight layout), or ``"canonical"`` (the assumed
        one; for testing).

    Returns:
      ``(output (T, B, D*O), h_n)``, or for an LSTM ``(output, (h_n, c_n))``.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxrnn_cudnn  # doctest: +SKIP
        >>> p = {"weight_ih_l0": jnp.ones((32, 8)), "weight_hh_l0": jnp.ones((32, 8))}
        >>> y, (h, c) = jaxrnn_cudnn.rnn("lstm", p, jnp.ones((5, 2, 8)))  # doctest: +SKIP
        >>> y.shape, h.shape, c.shape  # doctest: +SKIP
        ((5, 2, 8), (1, 2, 8), (1, 2, 8))
    """
    if mode not in CELL:
        raise ValueError(f"mode must be one of {list(CELL)}, got {mode!r}")
    if algo != "auto" and algo not in ALGOS:
        raise ValueError(f"algo must be 'auto' or one of {list(ALGOS)}, got {algo!r}")
    if layout not in ("auto", "canonical"):
        raise ValueError(f"layout must be 'auto' or 'canonical', got {layout!r}")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping of torch.nn names, got {type(params).__name__}")
    layers, bidir, _ = split_state_dict(params)
    x = jnp.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, I) or (B, T, I), got shape {x.shape}")
    dtype = _dtype_code(x.dtype, "x")
    if batch_first:
        x = jnp.swapaxes(x, 0, 1)
    t, b, i = x.shape
    if t == 0 or b == 0 or i == 0:
        raise ValueError(f"x must have T, B, I >= 1, got (T, B, I) = {x.shape}")
    g = GATES[mode]
    w_hh = np.shape(params["weight_hh_l0"])
    if len(w_hh) != 2 or w_hh[0] % g:
        raise ValueError(f"weight_hh_l0 must be ({g}*H, O) for mode={mode!r}, got {w_hh}")
    h = w_hh[0] // g
    has_proj = "weight_hr_l0" in params
    if has_proj and mode != "lstm":
        raise ValueError("weight_hr_l* (projection) is only valid for mode='lstm'")
    proj = int(np.shape(params["weight_hr_l0"])[0]) if has_proj else 0
    if has_proj and not 0 < proj < h:
        raise ValueError(
            f"proj_size must be in [1, H={h}), got weight_hr_l0 {np.shape(params['weight_hr_l0'])}"
        )
    shape = Shape(mode, i, h, layers, bidir, proj)
    for name, value in params.items():
        _dtype_code(jnp.result_type(value), name)
    expected = {}
    for layer in range(layers):
        for d in range(shape.dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            expected[f"weight_ih{sfx}"] = (g * h, shape.layer_input(layer))
            expected[f"weight_hh{sfx}"] = (g * h, shape.out)
            expected[f"bias_ih{sfx}"] = (g * h,)
            expected[f"bias_hh{sfx}"] = (g * h,)
            expected[f"weight_hr{sfx}"] = (proj, h)
    for name, value in params.items():
        if tuple(np.shape(value)) != expected[name]:
            raise ValueError(f"{name} must have shape {expected[name]}, got {np.shape(value)}")
    o, n_states = shape.out, layers * shape.dirs
    h0 = c0 = None
    if hx is not None:
        if mode == "lstm":
            if not isinstance(hx, tuple | list) or len(hx) != 2:
                raise TypeError("hx for an LSTM must be a pair (h0, c0)")
            h0, c0 = jnp.asarray(hx[0]), jnp.asarray(hx[1])
        else:
            if isinstance(hx, tuple | list):
                raise TypeError(f"hx for mode={mode!r} must be one array h0, not a pair")
            h0 = jnp.asarray(hx)
    for name, state, width in (("h0", h0, o), ("c0", c0, h)):
        if state is not None and state.shape != (n_states, b, width):
            raise ValueError(
                f"{name} must be (D*L, B, {width}) = {(n_states, b, width)}, got {state.shape}"
            )
        if state is not None and state.dtype != x.dtype:
            raise TypeError(f"{name} must have x's dtype {x.dtype}, got {state.dtype}")
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        if lengths.shape != (b,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise ValueError(
                f"lengths must be a ({b},) integer array, got {lengths.dtype}{lengths.shape}"
            )
        try:
            ln = np.asarray(lengths)
        except jax.errors.TracerArrayConversionError:
            ln = None  # traced: the handler checks them on the host
        if ln is not None and (ln.min() < 1 or ln.max() > t):
            raise ValueError(f"lengths must lie in [1, T={t}], got {ln.tolist()}")
    math = _math(precision, dtype)
    # Only now anything that needs the library and a GPU.
    cfg = _Cfg(mode, shape, algo, math, dtype, lengths is not None)
    if layout == "canonical":
        table, total = canonical(shape)
    else:
        table, total = queried(shape, dtype)
    w = pack(shape, params, table, total, x.dtype)
    if h0 is None:
        h0 = jnp.zeros((n_states, b, o), x.dtype)
    if mode == "lstm":
        c0 = jnp.zeros((n_states, b, h), x.dtype) if c0 is None else c0
    elif c0 is not None:
        raise ValueError(f"c0 is only valid for mode='lstm', got mode={mode!r}")
    else:
        c0 = jnp.zeros((0,), x.dtype)
    ln = jnp.full((b,), t, jnp.int32) if lengths is None else lengths.astype(jnp.int32)
    y, hn, cn = cast(tuple[Array, Array, Array], _core(cfg, x, h0, c0, w, ln))
    if batch_first:
        y = jnp.swapaxes(y, 0, 1)
    return (y, (hn, cn)) if mode == "lstm" else (y, hn)


def rnn_layer(
    mode: str,
    params: Any,
    xs: Any,
    h0: Any | None = None,
    c0: Any | None = None,
    *,
    lengths: Any = None,
    algo: str = "auto",
    precision: str | None = None,
) -> tuple[Array, Array, Array | None]:
    """One layer (one or both directions), with per-direction names without ``_l{k}``.

    ``params`` is a sequence of one mapping per direction (forward first) holding
    ``weight_ih (G*H, I)``, ``weight_hh (G*H, O)``, optional ``bias_ih``/``bias_hh`` and
    ``weight_hr (P, H)``. ``xs (T, B, I)``, ``h0 (D, B, O)``, ``c0 (D, B, H)``. Returns
    ``ys (T, B, D*O)``, ``h_n (D, B, O)`` and ``c_n (D, B, H)`` (None unless LSTM).

    Examples:
        >>> import jax.numpy as jnp, jaxrnn_cudnn  # doctest: +SKIP
        >>> p = [{"weight_ih": jnp.ones((24, 4)), "weight_hh": jnp.ones((24, 8))}]
        >>> ys, h_n, _ = jaxrnn_cudnn.rnn_layer("gru", p, jnp.ones((5, 2, 4)))  # doctest: +SKIP
        >>> ys.shape, h_n.shape  # doctest: +SKIP
        ((5, 2, 8), (1, 2, 8))
    """
    if isinstance(params, Mapping) or len(params) not in (1, 2):
        raise ValueError("params must be a sequence of one mapping per direction (1 or 2)")
    flat = {}
    for d, p in enumerate(params):
        if not isinstance(p, Mapping):
            raise TypeError(f"params[{d}] must be a mapping, got {type(p).__name__}")
        for k, v in p.items():
            flat[f"{k}_l0" + ("_reverse" if d else "")] = v
    hx = None
    if h0 is not None or c0 is not None:
        xs = jnp.asarray(xs)
        n = xs.shape[1] if xs.ndim == 3 else 0
        d = len(params)
        w_hh = np.shape(params[0].get("weight_hh", np.zeros((0, 0))))
        g = GATES.get(mode, 1)
        hid = w_hh[0] // g if len(w_hh) == 2 else 0
        out = np.shape(params[0]["weight_hr"])[0] if "weight_hr" in params[0] else hid
        if h0 is None:
            h0 = jnp.zeros((d, n, out), xs.dtype)
        if mode == "lstm":
            if c0 is None:
                c0 = jnp.zeros((d, n, hid), xs.dtype)
            hx = (h0, c0)
        else:
            if c0 is not None:
                raise ValueError(f"c0 is only valid for mode='lstm', got mode={mode!r}")
            hx = h0
    ys, state = rnn(mode, flat, xs, hx, lengths=lengths, algo=algo, precision=precision)
    if mode == "lstm":
        return ys, state[0], state[1]
    return ys, state, None
