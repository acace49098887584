"""One recurrent layer (one or both directions) through oneDNN, differentiable by custom_vjp.

PyTorch's parameters are converted to oneDNN's layouts here, in JAX: the conversion is a few
transposes, and autodiff through it turns oneDNN's gradients back into PyTorch's layout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn_onednn._lib import last_error, library

Array = jax.Array

MODES = {"lstm": 0, "gru": 1, "rnn_tanh": 2, "rnn_relu": 3}
_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
_KEYS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
# Calls under vmap loop over the mapped axis: oneDNN has no batch-of-sequences axis
# beyond N, and folding the vmapped axis into N is only valid with shared weights.
_VMAP = "sequential"


def _empty() -> Array:
    return jnp.zeros((0,), jnp.float32)


def _workspace_bytes(mode: int, bidir: int, t: int, n: int, i: int, h: int, p: int) -> int:
    lib = library()
    size = lib.jaxrnn_onednn_workspace_size(mode, bidir, t, n, i, h, p)
    if size < 0:
        raise RuntimeError(f"oneDNN cannot build this RNN: {last_error(lib)}")
    return max(int(size), 1)


def _forward(training: bool, mode: int, bidir: int, x, h0, c0, wl, wi, wp, b):
    library()
    t, n, i = x.shape
    d, h = b.shape[1], b.shape[3]
    p = wp.shape[2] if wp.ndim == 4 else 0
    o = p or h
    f32 = jnp.float32
    shapes = [
        jax.ShapeDtypeStruct((t, n, d * o), f32),
        jax.ShapeDtypeStruct((1, d, n, o), f32),
        jax.ShapeDtypeStruct(c0.shape, f32),
    ]
    name = "jaxrnn_onednn_forward_inference"
    if training:
        ws = _workspace_bytes(mode, bidir, t, n, i, h, p)
        shapes.append(jax.ShapeDtypeStruct((ws,), jnp.uint8))
        name = "jaxrnn_onednn_forward_training"
    call = jax.ffi.ffi_call(name, shapes, vmap_method=_VMAP)
    return call(x, h0, c0, wl, wi, wp, b, mode=np.int32(mode), bidir=np.int32(bidir))


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _core(mode: int, bidir: int, x, h0, c0, wl, wi, wp, b):
    # Not differentiated: the inference primitive, which keeps no workspace.
    return tuple(_forward(False, mode, bidir, x, h0, c0, wl, wi, wp, b))


def _core_fwd(mode: int, bidir: int, x, h0, c0, wl, wi, wp, b):
    y, hn, cn, ws = _forward(True, mode, bidir, x, h0, c0, wl, wi, wp, b)
    return (y, hn, cn), (x, h0, c0, wl, wi, wp, b, y, hn, cn, ws)


def _core_bwd(mode: int, bidir: int, res, cotangents):
    x, h0, c0, wl, wi, wp, b, y, hn, cn, ws = res
    dy, dhn, dcn = cotangents
    shapes = [jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in (x, h0, c0, wl, wi, wp, b)]
    call = jax.ffi.ffi_call("jaxrnn_onednn_backward", shapes, vmap_method=_VMAP)
    grads = call(
        x, h0, c0, wl, wi, wp, b, y, hn, cn, ws, dy, dhn, dcn,
        mode=np.int32(mode), bidir=np.int32(bidir),
    )  # fmt: skip
    return tuple(grads)


_core.defvjp(_core_fwd, _core_bwd)


def _check_array(name: str, a: Any, shape: tuple[int, ...]) -> Array:
    a = jnp.asarray(a)
    if a.dtype != jnp.float32:
        raise TypeError(f"{name} must be float32 for the oneDNN kernels, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a


def _layer_to_onednn(mode: str, p: Mapping[str, Any], i: int, h: int, proj: int, where: str):
    """PyTorch's per-direction parameters -> (w_layer (G, H, I), w_iter (G, H, O),
    w_proj (P, H) or None, bias (Gb, H)) in oneDNN's gate order.

    The weights keep PyTorch's memory layout (oneDNN's ldgoi / ldoi): only reshapes, and
    for the GRU a permutation of gate blocks.
    """
    g = _GATES[mode]
    o = proj or h
    unknown = set(p) - set(_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown parameter names {sorted(unknown)}")
    for k in ("weight_ih", "weight_hh"):
        if k not in p:
            raise ValueError(f"{where}: missing {k!r}")
    if ("bias_ih" in p) != ("bias_hh" in p):
        raise ValueError(f"{where}: give both bias_ih and bias_hh or neither")
    w_ih = _check_array(f"{where} weight_ih", p["weight_ih"], (g * h, i)).reshape(g, h, i)
    w_hh = _check_array(f"{where} weight_hh", p["weight_hh"], (g * h, o)).reshape(g, h, o)
    if "bias_ih" in p:
        b_ih = _check_array(f"{where} bias_ih", p["bias_ih"], (g * h,)).reshape(g, h)
        b_hh = _check_array(f"{where} bias_hh", p["bias_hh"], (g * h,)).reshape(g, h)
    else:
        b_ih = b_hh = jnp.zeros((g, h), jnp.float32)
    if mode == "gru":
        # PyTorch's gates are (r, z, n); oneDNN's (u, r, o) with u = z. The linear-before-reset
        # GRU keeps the candidate's hidden bias apart (a 4th bias row): b_hn inside r * (...).
        w_ih = jnp.stack([w_ih[1], w_ih[0], w_ih[2]])
        w_hh = jnp.stack([w_hh[1], w_hh[0], w_hh[2]])
        bias = jnp.stack([b_ih[1] + b_hh[1], b_ih[0] + b_hh[0], b_ih[2], b_hh[2]])
    else:
        # LSTM gates are (i, f, g, o) in both libraries; the two biases always add up.
        bias = b_ih + b_hh
    w_proj = None
    if proj:
        if "weight_hr" not in p:
            raise ValueError(f"{where}: missing 'weight_hr'")
        w_proj = _check_array(f"{where} weight_hr", p["weight_hr"], (proj, h))
    return w_ih, w_hh, w_proj, bias


def rnn_layer(
    mode: str,
    params: Sequence[Mapping[str, Any]],
    xs: Any,
    h0: Any | None = None,
    c0: Any | None = None,
    *,
    bidirectional: bool | None = None,
) -> tuple[Array, Array, Array | None]:
    """One layer of ``torch.nn.LSTM/GRU/RNN`` on oneDNN's fused primitive.

    Args:
      mode: ``"lstm"``, ``"gru"``, ``"rnn_tanh"`` or ``"rnn_relu"``.
      params: one mapping per direction (forward first) with PyTorch's per-layer names
        without the ``_l{k}`` suffix: ``weight_ih (G*H, I)``, ``weight_hh (G*H, O)``,
        optional ``bias_ih``/``bias_hh (G*H,)``, and for a projected LSTM ``weight_hr (P, H)``.
      xs: ``(T, B, I)`` float32, time major.
      h0: ``(D, B, O)`` initial hidden state (zeros if None); ``O`` is ``P`` or ``H``.
      c0: ``(D, B, H)`` initial cell state, LSTM only (zeros if None).
      bidirectional: must agree with ``len(params)`` when given.

    Returns:
      ``ys (T, B, D*O)`` (directions concatenated), ``h_n (D, B, O)`` and ``c_n (D, B, H)``
      (None unless LSTM).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
    if isinstance(params, Mapping) or len(params) not in (1, 2):
        raise ValueError("params must be a sequence of one mapping per direction (1 or 2)")
    d = len(params)
    if bidirectional is not None and bool(bidirectional) != (d == 2):
        raise ValueError(f"bidirectional={bidirectional} but {d} direction(s) of params given")
    xs = jnp.asarray(xs)
    if xs.ndim != 3:
        raise ValueError(f"xs must be (T, B, I), got shape {xs.shape}")
    if xs.dtype != jnp.float32:
        raise TypeError(f"xs must be float32 for the oneDNN kernels, got {xs.dtype}")
    t, n, i = xs.shape
    if t == 0 or n == 0:
        raise ValueError(f"xs must have T >= 1 and B >= 1, got shape {xs.shape}")
    w_hh0 = jnp.asarray(params[0].get("weight_hh", np.zeros((0, 0))))
    if w_hh0.ndim != 2 or w_hh0.shape[0] % _GATES[mode]:
        raise ValueError(f"weight_hh must be (G*H, O) with G={_GATES[mode]}, got {w_hh0.shape}")
    h = w_hh0.shape[0] // _GATES[mode]
    has_proj = "weight_hr" in params[0]
    if has_proj and mode != "lstm":
        raise ValueError("weight_hr (projection) is only valid for mode='lstm'")
    proj = int(jnp.shape(params[0]["weight_hr"])[0]) if has_proj else 0
    if any(("weight_hr" in p) != has_proj for p in params):
        raise ValueError("either every direction has weight_hr or none")
    o = proj or h
    names = ["forward", "reverse"]
    conv = [_layer_to_onednn(mode, p, i, h, proj, names[k]) for k, p in enumerate(params)]
    wl = jnp.stack([c[0] for c in conv])[None]
    wi = jnp.stack([c[1] for c in conv])[None]
    wp = jnp.stack([c[2] for c in conv])[None] if proj else _empty()  # type: ignore[misc]
    b = jnp.stack([c[3] for c in conv])[None]
    h0 = jnp.zeros((d, n, o), jnp.float32) if h0 is None else _check_array("h0", h0, (d, n, o))
    if mode == "lstm":
        c0 = jnp.zeros((d, n, h), jnp.float32) if c0 is None else _check_array("c0", c0, (d, n, h))
        c0 = c0[None]
    elif c0 is not None:
        raise ValueError(f"c0 is only valid for mode='lstm', got mode={mode!r}")
    else:
        c0 = _empty()
    out = _core(MODES[mode], int(d == 2), xs, h0[None], c0, wl, wi, wp, b)
    ys, hn, cn = cast(tuple[Array, Array, Array], out)
    return ys, hn[0], (cn[0] if mode == "lstm" else None)


_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def split_state_dict(params: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """``torch.nn.LSTM/GRU/RNN`` state_dict names -> ``[layer][direction]{name: array}``."""
    layers: dict[int, dict[int, dict[str, Any]]] = {}
    for key, value in params.items():
        m = _NAME.match(key)
        if m is None:
            raise ValueError(f"unknown parameter name {key!r}")
        layers.setdefault(int(m[2]), {}).setdefault(int(bool(m[3])), {})[m[1]] = value
    if not layers or sorted(layers) != list(range(len(layers))):
        raise ValueError(f"layers must be numbered 0..L-1, got {sorted(layers)}")
    dirs = {len(v) for v in layers.values()}
    if len(dirs) != 1 or any(sorted(v) != list(range(len(v))) for v in layers.values()):
        raise ValueError("every layer needs the same directions (forward, and _reverse)")
    return [[layers[k][j] for j in sorted(layers[k])] for k in sorted(layers)]


def rnn(
    mode: str,
    params: Mapping[str, Any],
    x: Any,
    hx: Any = None,
    *,
    batch_first: bool = False,
) -> tuple[Array, Any]:
    """A stack of layers, as ``torch.nn.LSTM/GRU/RNN`` (and ``jaxrnn.functional``) return it.

    ``params`` are the module's state_dict names (``weight_ih_l0``, ``..._reverse``);
    ``x`` is ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``). ``hx`` is ``h0 (D*L, B, O)``,
    or ``(h0, c0)`` with ``c0 (D*L, B, H)`` for LSTM. Returns ``(output (T, B, D*O), h_n)``
    or for LSTM ``(output, (h_n, c_n))``. Layers run one after another, each one primitive.
    """
    layers = split_state_dict(params)
    d = len(layers[0])
    x = jnp.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, I) or (B, T, I), got shape {x.shape}")
    if batch_first:
        x = jnp.swapaxes(x, 0, 1)
    h0 = c0 = None
    if hx is not None:
        if mode == "lstm":
            if not isinstance(hx, tuple | list) or len(hx) != 2:
                raise TypeError("hx for an LSTM must be a pair (h0, c0)")
            h0, c0 = (jnp.asarray(a) for a in hx)
        else:
            h0 = jnp.asarray(hx)
    for name, state in (("h0", h0), ("c0", c0)):
        if state is not None and (state.ndim != 3 or state.shape[0] != len(layers) * d):
            raise ValueError(
                f"{name} must be (D*L, B, ...) = ({len(layers) * d}, B, ...), got {state.shape}"
            )
    hs, cs = [], []
    for k, layer in enumerate(layers):
        sl = slice(k * d, (k + 1) * d)
        x, hn, cn = rnn_layer(
            mode, layer, x,
            None if h0 is None else h0[sl], None if c0 is None else c0[sl],
        )  # fmt: skip
        hs.append(hn)
        cs.append(cn)
    out = jnp.swapaxes(x, 0, 1) if batch_first else x
    h_n = jnp.concatenate(hs)
    if mode == "lstm":
        return out, (h_n, jnp.concatenate(cs))
    return out, h_n
