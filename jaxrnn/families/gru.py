"""GRU, ``torch.nn.GRU``'s formula (reset gate applied after ``W_hn h + b_hn``).

Parameters ``weight_ih (3H, I)``, ``weight_hh (3H, H)``, ``bias_ih (3H,)``, ``bias_hh (3H,)``
with gate blocks ``(r, z, n)`` in PyTorch's order; carry ``h (B, H)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrnn.families.base import (
    Array,
    Family,
    Fused,
    Params,
    affine_shapes,
    affine_sizes,
    cast,
    contract,
    gate_preactivations,
    hold,
    linear,
    masked_outputs,
    matmul,
    projection_free,
    shifted,
    sigmoid,
    vector_state,
)


def gru_update(gi: Array, gh: Array, h: Array) -> Array:
    """The GRU's new state from its preactivations ``gi, gh`` (``(B, 3H)``) and state ``h``.

    ``r, z = σ(gi_{r,z} + gh_{r,z})``, ``n = tanh(gi_n + r * gh_n)``, ``h' = (1 - z) n + z h``.
    """
    ir, iz, in_ = jnp.split(gi, 3, axis=-1)
    hr, hz, hn = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(ir + hr)
    z = jax.nn.sigmoid(iz + hz)
    n = jnp.tanh(in_ + r * hn)
    return n + z * (h - n)


def gru_cell(params: Params, carry: Array, x: Array) -> tuple[Array, Array]:
    """GRU step with PyTorch's formula (:func:`gru_update`); carry ``h`` is ``(B, H)``."""
    gi, gh = gate_preactivations(params, carry, x)
    h = gru_update(gi, gh, carry)
    return h, h


def dropped_gru_cell(params: Params, carry: Array, x: Array, mask: Array) -> tuple[Array, Array]:
    """:func:`gru_cell` with ``h`` dropped where it enters ``W_hh`` only: the update
    ``h' = n + z (h - n)`` keeps the undropped ``h`` (Gal & Ghahramani 2016; Keras)."""
    gi = linear(x, params["weight_ih"], params.get("bias_ih"))
    gh = linear(carry * mask, params["weight_hh"], params.get("bias_hh"))
    h = gru_update(gi, gh, carry)
    return h, h


def _forward(p: Params, xs, carry, valid, mask, *, reverse, unroll, mm_dtype, save):
    # The reset gate multiplies W_hn h, so the two projections stay separate matmuls.
    w = cast(p["weight_ih"].T, mm_dtype)
    whh_t = cast(p["weight_hh"].T, mm_dtype)
    b, bhh = p.get("bias_ih"), p.get("bias_hh")

    def step(h, inputs):
        x, v = inputs
        zi = matmul(x, w, mm_dtype)
        zh = matmul(h if mask is None else h * mask, whh_t, mm_dtype)
        if b is not None and bhh is not None:
            zi, zh = zi + b, zh + bhh
        ir, iu, in_ = jnp.split(zi, 3, axis=-1)
        hr, hu, hn = jnp.split(zh, 3, axis=-1)
        ru = sigmoid(jnp.concatenate([ir + hr, iu + hu], axis=-1))
        r, u = jnp.split(ru, 2, axis=-1)
        n = jnp.tanh(in_ + r * hn)
        new_h = hold(v, n + u * (h - n), h)
        return new_h, (new_h, jnp.concatenate([ru, n, hn], axis=-1))

    final, (hs, acts) = jax.lax.scan(step, carry, (xs, valid), reverse=reverse, unroll=unroll)
    return final, masked_outputs(hs, valid), ((hs, acts) if save else None)


def _backward(p: Params, xs, h0, valid, mask, saved, d_final, d_ys, *, reverse, unroll,
              mm_dtype):  # fmt: skip
    hs, acts = saved
    v = None if valid is None else valid[..., None].astype(xs.dtype)
    r, u, n, hn = jnp.split(acts, 4, axis=-1)
    h_prev = shifted(hs, h0, reverse)
    dn_ = (1 - u) * (1 - n * n)  # d n-preactivation / dh
    coef_i = jnp.concatenate([dn_ * hn * r * (1 - r), (h_prev - n) * u * (1 - u), dn_], -1)
    coef_h = jnp.concatenate([coef_i[..., : -n.shape[-1]], dn_ * r], axis=-1)
    keep = u
    if v is not None:
        d_ys, coef_i, coef_h, keep = d_ys * v, coef_i * v, coef_h * v, jnp.where(v > 0, u, 1)
    whh = cast(p["weight_hh"], mm_dtype)

    def bstep(dh, inputs):
        dy, coef_t, keep_t = inputs
        dh = dh + dy
        dzh = jnp.concatenate([dh, dh, dh], axis=-1) * coef_t
        dh_in = matmul(dzh, whh, mm_dtype)
        if mask is not None:
            dh_in = dh_in * mask
        return dh_in + dh * keep_t, (dzh, dh)

    dh0, (dzh, dh_all) = jax.lax.scan(
        bstep, d_final, (d_ys, coef_h, keep), reverse=not reverse, unroll=unroll
    )
    dz = jnp.concatenate([dh_all, dh_all, dh_all], axis=-1) * coef_i
    h_in = h_prev if mask is None else h_prev * mask
    grads = {
        "weight_ih": contract("tbg,tbi->gi", dz, xs, mm_dtype),
        "weight_hh": contract("tbg,tbp->gp", dzh, h_in, mm_dtype),
    }
    if "bias_ih" in p:
        grads["bias_ih"] = dz.sum(axis=(0, 1))
        grads["bias_hh"] = dzh.sum(axis=(0, 1))
    return grads, matmul(dz, p["weight_ih"], mm_dtype), dh0


GRU = Family(
    name="gru",
    cell=gru_cell,
    param_shapes=lambda sizes: affine_shapes(3, sizes),
    read_sizes=affine_sizes(3),
    state_shapes=vector_state,
    kernels=("fused", "scan"),
    dropped_cell=dropped_gru_cell,
    fused=Fused(_forward, _backward),
    check_sizes=projection_free("gru"),
)
