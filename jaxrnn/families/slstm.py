"""sLSTM, the scalar-memory cell of xLSTM: Beck, Pöppel, Spanring, Auer, Prudnikova, Kopp,
Klambauer, Brandstetter & Hochreiter 2024, "xLSTM: Extended Long Short-Term Memory"
(arXiv:2405.04517), §2.2 and Appendix A.2, as the authors' ``xlstm`` package (2.0.6) computes
it on its ``"vanilla"`` PyTorch backend.

Equations, with pre-activations ``[ĩ; f̃; z̃; õ] = W x_t + R h_{t-1} + b`` (gate-major, each
``(B, H)``) and the stabilizer ``m``::

    m_t = max(ĩ_t, log σ(f̃_t) + m_{t-1})         (m_t = ĩ_t where n_{t-1} = 0)
    i'_t = exp(ĩ_t - m_t),  f'_t = exp(log σ(f̃_t) + m_{t-1} - m_t)
    c_t = f'_t c_{t-1} + i'_t tanh(z̃_t)
    n_t = f'_t n_{t-1} + i'_t
    h_t = σ(õ_t) c_t / n_t

``c`` and ``n`` are the paper's states scaled by ``exp(-m)``; ``h`` does not depend on the
stabilizer, which only keeps ``exp`` finite (pre-activations of ±80 are tested). The official
code starts ``m`` at the input gate when the whole state is zero (``torch.all(n == 0)``); here
the same rule is applied per element, which is the same thing for a zero initial state and
keeps a reset sequence independent of the others in its batch. Both exponentials are taken of
``min(·, 0)``: the official ``min(exp(·), 1)`` in value, with no overflow where ``n = 0``.

The recurrent matrix ``R`` is block-diagonal over heads (family option ``num_heads``, which
must divide ``hidden_size``).

Parameters (one layer-direction), gate order ``(i, f, z, o)``:

- ``weight_ih (4H, I)``: the input projection ``W`` (PyTorch's ``(out, in)`` layout);
- ``weight_hh (NH, 4*DH, DH)``: ``R``, one ``(4*DH, DH)`` block per head, rows gate-major,
  ``DH = H / NH``; this is the vanilla backend's ``slstm_cell._recurrent_kernel_``;
- ``bias (4H,)``, gate-major: the vanilla backend's ``slstm_cell._bias_``.

Carry ``(h, c, n, m)``, each ``(B, H)`` (the official ``(4, B, H)`` state, in its order);
final states ``(h_n, c_n, n_n, m_n)``.

Mapping to the official ``xlstm.blocks.slstm.layer.sLSTMLayer`` (``conv1d_kernel_size=0``,
``backend="vanilla"``; its group norm and dropout come after the cell and are not part of
this family): ``weight_hh = slstm_cell._recurrent_kernel_``, ``bias = slstm_cell._bias_``, and
``weight_ih`` is block-diagonal, with the gate blocks taken from the layer's head-wise
projections in the order the layer feeds the cell, ``[fgate; igate; zgate; ogate]`` (the
layer hands ``fgate``'s output to the cell's input gate and ``igate``'s to its forget gate):
see :func:`from_xlstm` and :func:`to_xlstm`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.families.base import Array, Family, Params, Sizes, linear

GATES = 4


def recurrent(weight_hh: Array, h: Array) -> Array:
    """``R h`` for the block-diagonal ``weight_hh (NH, 4*DH, DH)``: ``(B, H) -> (B, 4H)``,
    gate-major like ``weight_ih``'s rows."""
    heads, _, head_dim = weight_hh.shape
    lead = h.shape[:-1]
    per_head = jnp.einsum("...hi,hoi->...ho", h.reshape(*lead, heads, head_dim), weight_hh)
    per_head = per_head.reshape(*lead, heads, GATES, head_dim)
    return jnp.swapaxes(per_head, -3, -2).reshape(*lead, GATES * heads * head_dim)


def pointwise(
    raw: Array, carry: tuple[Array, Array, Array, Array], *, forget: str = "sigmoid"
) -> tuple[tuple[Array, Array, Array, Array], Array]:
    """The sLSTM state update from the summed pre-activations ``raw (B, 4H)``."""
    _, c, n, m = carry
    i, f, z, o = jnp.split(raw, GATES, axis=-1)
    log_f = jax.nn.log_sigmoid(f) if forget == "sigmoid" else f
    log_f_m = log_f + m
    m_new = jnp.where(n == 0, i, jnp.maximum(i, log_f_m))
    i_gate = jnp.exp(jnp.minimum(i - m_new, 0))
    f_gate = jnp.exp(jnp.minimum(log_f_m - m_new, 0))
    c_new = f_gate * c + i_gate * jnp.tanh(z)
    n_new = f_gate * n + i_gate
    h_new = jax.nn.sigmoid(o) * c_new / n_new
    return (h_new, c_new, n_new, m_new), h_new


def cell(
    params: Params, carry: tuple[Array, Array, Array, Array], x: Array, *, forget: str = "sigmoid"
) -> tuple[tuple[Array, Array, Array, Array], Array]:
    """One sLSTM step: ``x (B, I)``, carry ``(h, c, n, m)`` each ``(B, H)`` -> ``h (B, H)``.

    ``forget`` is ``"sigmoid"`` (``log f = log σ(f̃)``, the official cell's) or ``"exp"``
    (``log f = f̃``, the paper's other choice).
    """
    if forget not in ("sigmoid", "exp"):
        raise ValueError(f"forget must be 'sigmoid' or 'exp', got {forget!r}")
    raw = linear(x, params["weight_ih"]) + recurrent(params["weight_hh"], carry[0])
    if "bias" in params:
        raw = raw + params["bias"]
    return pointwise(raw, carry, forget=forget)


def check_heads(hidden_size: int, num_heads: Any) -> None:
    """``num_heads`` must be a positive int dividing ``hidden_size`` (``ValueError`` if not)."""
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads <= 0:
        raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}")
    if hidden_size % num_heads:
        raise ValueError(
            f"num_heads={num_heads} must divide hidden_size={hidden_size} (each head gets "
            "hidden_size / num_heads units)"
        )


def _check_sizes(sizes: Sizes) -> None:
    if sizes.proj_size:
        raise ValueError(f"the sLSTM has no projection, got proj_size={sizes.proj_size}")
    check_heads(sizes.hidden_size, sizes.option("num_heads", 1))


def _shapes(sizes: Sizes) -> dict[str, tuple[int, ...]]:
    _check_sizes(sizes)
    heads = sizes.option("num_heads", 1)
    head_dim = sizes.hidden_size // heads
    shapes: dict[str, tuple[int, ...]] = {
        "weight_ih": (GATES * sizes.hidden_size, sizes.input_size),
        "weight_hh": (heads, GATES * head_dim, head_dim),
    }
    if sizes.bias:
        shapes["bias"] = (GATES * sizes.hidden_size,)
    return shapes


def _read_sizes(params: Params) -> Sizes:
    w, r = params["weight_ih"], params["weight_hh"]
    if getattr(w, "ndim", None) != 2 or getattr(r, "ndim", None) != 3:
        raise ValueError(
            "an sLSTM needs weight_ih (4H, I) and weight_hh (num_heads, 4*H/num_heads, "
            f"H/num_heads), got shapes {getattr(w, 'shape', None)} and {getattr(r, 'shape', None)}"
        )
    heads, _, head_dim = r.shape
    return Sizes(int(w.shape[1]), int(heads * head_dim), options=(("num_heads", int(heads)),))


def _init(key: Array, name: str, shape: tuple[int, ...], sizes: Sizes, dtype) -> Array:
    # PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for every weight (the official layer's own init,
    # zeros for R and a power-law forget bias, is a model choice; it can be loaded).
    bound = 1.0 / math.sqrt(sizes.hidden_size)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


SLSTM = Family(
    name="slstm",
    cell=cell,
    param_shapes=_shapes,
    read_sizes=_read_sizes,
    state_shapes=lambda s, batch: tuple((*batch, s.hidden_size) for _ in range(4)),
    state_names=("h_n", "c_n", "n_n", "m_n"),
    kernels=("scan",),
    init=_init,
    check_sizes=_check_sizes,
    options=(("num_heads", 1),),
)


# --- the official layer's weights ----------------------------------------------------------

_LAYER_GATES = ("fgate", "igate", "zgate", "ogate")  # the order sLSTMLayer feeds the cell


def _block_diagonal(blocks: np.ndarray) -> np.ndarray:
    heads, rows, cols = blocks.shape
    out = np.zeros((heads * rows, heads * cols), blocks.dtype)
    for h in range(heads):
        out[h * rows : (h + 1) * rows, h * cols : (h + 1) * cols] = blocks[h]
    return out


def from_xlstm(state_dict: Mapping[str, Any], layer: int = 0) -> dict[str, Array]:
    """The weights of an official ``xlstm`` ``sLSTMLayer`` (vanilla backend, no conv) as
    this family's layer-``layer`` parameters (``weight_ih_l{layer}``, ...).

    ``state_dict`` maps the layer's names (``fgate.weight (NH, DH, DH)``, ``igate.weight``,
    ``zgate.weight``, ``ogate.weight``, ``slstm_cell._recurrent_kernel_``,
    ``slstm_cell._bias_``; the group norm's weight is not used) to arrays or tensors.

    Examples:
        >>> import numpy as np
        >>> from jaxrnn.families.slstm import from_xlstm
        >>> sd = {f"{g}.weight": np.ones((2, 3, 3), np.float32)
        ...       for g in ("fgate", "igate", "zgate", "ogate")}
        >>> sd["slstm_cell._recurrent_kernel_"] = np.zeros((2, 12, 3), np.float32)
        >>> sd["slstm_cell._bias_"] = np.zeros(24, np.float32)
        >>> {k: v.shape for k, v in from_xlstm(sd).items()}
        {'weight_ih_l0': (24, 6), 'weight_hh_l0': (2, 12, 3), 'bias_l0': (24,)}
    """

    def array(name: str) -> np.ndarray:
        if name not in state_dict:
            raise ValueError(f"state_dict has no {name!r}; got keys {sorted(state_dict)}")
        value = state_dict[name]
        value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        return value

    weight_ih = np.concatenate([_block_diagonal(array(f"{g}.weight")) for g in _LAYER_GATES])
    return {
        f"weight_ih_l{layer}": jnp.asarray(weight_ih),
        f"weight_hh_l{layer}": jnp.asarray(array("slstm_cell._recurrent_kernel_")),
        f"bias_l{layer}": jnp.asarray(array("slstm_cell._bias_")),
    }


def to_xlstm(params: Mapping[str, Any], layer: int = 0) -> dict[str, np.ndarray]:
    """The inverse of :func:`from_xlstm`: this family's layer-``layer`` parameters as the
    official ``sLSTMLayer``'s names (numpy arrays; ``torch.from_numpy`` them to load).

    ``weight_ih`` must be block-diagonal over heads with ``I == H`` (the official layer's
    head-wise projections); anything else raises ``ValueError``.
    """
    weight_ih = np.asarray(params[f"weight_ih_l{layer}"])
    weight_hh = np.asarray(params[f"weight_hh_l{layer}"])
    heads, _, head_dim = weight_hh.shape
    hidden = heads * head_dim
    if weight_ih.shape != (GATES * hidden, hidden):
        raise ValueError(
            f"the official sLSTMLayer needs input_size == hidden_size, weight_ih ({4 * hidden}, "
            f"{hidden}); got {weight_ih.shape}"
        )
    out: dict[str, np.ndarray] = {}
    for g, name in enumerate(_LAYER_GATES):
        block = weight_ih[g * hidden : (g + 1) * hidden]
        parts = np.stack(
            [block[h * head_dim : (h + 1) * head_dim, h * head_dim : (h + 1) * head_dim]
             for h in range(heads)]
        )  # fmt: skip
        if not np.array_equal(_block_diagonal(parts), block):
            raise ValueError(
                f"weight_ih_l{layer}'s {'ifzo'[g]} gate block is not block-diagonal over "
                f"{heads} heads, so the official layer's head-wise projections cannot hold it"
            )
        out[f"{name}.weight"] = parts
    out["slstm_cell._recurrent_kernel_"] = weight_hh
    out["slstm_cell._bias_"] = np.asarray(params[f"bias_l{layer}"])
    return out
