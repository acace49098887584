"""The fused kernel: a family's own forward loop with its hand-written backward pass.

Autodiff of a scanned cell gives a reverse loop with four small matmuls a step (``dx``,
``dW_ih``, ``dh``, ``dW_hh``). A family's :class:`~jaxrnn.families.base.Fused` loops keep only
the recurrent chain inside the reverse loop and do every weight and input gradient as one
contraction over all ``T * B`` rows after it. This module is the ``jax.custom_vjp`` wiring;
the loops live in each family's file. Gradients are tested against ``jax.grad`` of the scan
kernel (``tests/test_conformance.py``, ``tests/test_fast_backward.py``).
"""

from __future__ import annotations

import functools
from typing import Any

import jax

from jaxrnn.families.base import Array, Carry, Family, Params


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 6, 7, 8))
def _fused(family: Family, p, xs, carry, valid, mask, reverse, unroll, mm_dtype):
    assert family.fused is not None
    final, ys, _ = family.fused.forward(
        p, xs, carry, valid, mask, reverse=reverse, unroll=unroll, mm_dtype=mm_dtype, save=False
    )
    return final, ys


def _fused_fwd(family: Family, p, xs, carry, valid, mask, reverse, unroll, mm_dtype):
    assert family.fused is not None
    final, ys, saved = family.fused.forward(
        p, xs, carry, valid, mask, reverse=reverse, unroll=unroll, mm_dtype=mm_dtype, save=True
    )
    return (final, ys), (p, xs, carry, valid, mask, saved)


def _fused_bwd(family: Family, reverse, unroll, mm_dtype, res, cts):
    assert family.fused is not None
    p, xs, carry, valid, mask, saved = res
    d_final, d_ys = cts
    grads, dxs, d_carry = family.fused.backward(
        p, xs, carry, valid, mask, saved, d_final, d_ys,
        reverse=reverse, unroll=unroll, mm_dtype=mm_dtype,
    )  # fmt: skip
    # Cotangents take their primal's dtype (inputs, weights and carry may differ, e.g. bf16 x).
    grads = {k: grads[k].astype(p[k].dtype) for k in p}
    d_carry = jax.tree.map(lambda d, c: d.astype(c.dtype), d_carry, carry)
    return grads, dxs.astype(xs.dtype), d_carry, None, None


_fused.defvjp(_fused_fwd, _fused_bwd)


def run(
    family: Family,
    params: Params,
    xs: Array,
    carry: Carry,
    *,
    init: Carry = None,
    valid: Array | None = None,
    resets: Array | None = None,
    mask: Array | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    matmul_dtype: Any = None,
) -> tuple[Carry, Array]:
    """``xs (T, B, I) -> (final carry, ys)`` through ``family.fused``; no resets (the kernel's
    ``supports`` refuses them). ``matmul_dtype`` (e.g. ``jnp.bfloat16``) casts every matmul's
    operands, forward and backward, with sums in the operands' own dtype."""
    del init
    if resets is not None:
        raise ValueError("the fused kernel does not run resets; use backend='scan'")
    return _fused(family, dict(params), xs, carry, valid, mask, reverse, unroll, matmul_dtype)
