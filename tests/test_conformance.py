"""Every registered family on every kernel it offers equals the family's own reference step.

The reference is written here, independent of :mod:`jaxrnn.kernels`: ``lax.scan`` of
``family.cell`` with lengths, direction, resets and the recurrent dropout mask applied by
hand. Kernels must give the same outputs and final carries, and gradients equal to autodiff
of that reference, in float64. A family added to the registry is picked up with no edit here.
"""

from __future__ import annotations

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import families, kernels
from jaxrnn.params import Layout, init_params, layer_params

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

T, B, I, H = 6, 3, 3, 4
SPATIAL = (4, 4)  # for families whose inputs are images
LENGTHS = np.array([6, 2, 4])
RESETS = np.zeros((T, B), bool)
RESETS[[2, 3], [0, 2]] = True
RESETS[1, 1] = True


def sample(name: str, seed: int = 0):
    """Float64 layer-0 params, ``x (T, B, ..., I)``, a random carry and a dropout mask."""
    family = families.get(name)
    layout = Layout(name, I, H)
    params = layer_params(
        init_params(jax.random.key(seed), layout, dtype=jnp.float64), 0, reverse=False
    )
    keys = jax.random.split(jax.random.key(seed + 1), 8)
    batch = (B, *SPATIAL) if family.feature_ndim == 3 else (B,)
    x = jax.random.normal(keys[0], (T, *batch, I), jnp.float64)
    shapes = family.state_shapes(layout.sizes(0), batch)
    dtype = jnp.dtype(family.state_dtype(jnp.float64))
    parts = [
        jax.random.normal(k, s, jnp.float64).astype(dtype) * (1 + 0.5j if dtype.kind == "c" else 1)
        for k, s in zip(keys[1:], shapes, strict=False)
    ]
    carry = parts[0] if len(parts) == 1 else tuple(parts)
    mask = jax.random.bernoulli(keys[6], 0.7, shapes[0]).astype(jnp.float64) / 0.7
    return family, params, x, carry, mask


def rows(flags, new, old):
    """``where(flags (B,), new, old)`` on every leaf."""
    return jax.tree.map(
        lambda n, o: jnp.where(flags.reshape(flags.shape + (1,) * (n.ndim - 1)), n, o), new, old
    )


def reference(family, params, xs, carry, *, valid, resets, mask, reverse):
    """The definition: padded steps keep the carry and output 0; a reset step starts from the
    initial carry (or, for a family with a ``start_step``, is that step: the RG-LRU's segment
    start); in reverse, a segment restarts at its last step."""
    init = carry
    if resets is not None and reverse:
        resets = jnp.concatenate([resets[1:], jnp.zeros_like(resets[:1])])

    def step(c, inputs):
        x, v, r = inputs
        c_in = c if r is None else rows(r, init, c)
        if r is not None and family.start_step is not None:
            new, y = family.start_step(params, c, x, r)
        elif mask is None:
            new, y = family.cell(params, c_in, x)
        else:
            new, y = family.step_with_mask(params, c_in, x, mask)
        if v is None:
            return new, y
        return rows(v, new, c), rows(v, y, jnp.zeros_like(y))

    return jax.lax.scan(step, carry, (xs, valid, resets), reverse=reverse)


def cases():
    # A pairwise cover of (reverse, lengths, resets, mask) for each family and kernel it
    # offers; combinations a kernel does not support are left out (its supports() says why).
    flags = [(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 1, 0), (1, 0, 0, 1), (1, 1, 0, 0), (0, 0, 1, 1)]
    for name in families.names():
        family = families.get(name)
        for kernel, (rev, lens, res, msk) in itertools.product(kernels.offered(family), flags):
            call = kernels.Call(
                lengths=bool(lens), resets=bool(res), recurrent_dropout=bool(msk),
                dtype=jnp.float64,
            )  # fmt: skip
            if family_supports(family, kernel, call):
                yield pytest.param(name, kernel, rev, lens, res, msk, id=f"{name}-{kernel}-"
                                   f"r{rev}l{lens}s{res}m{msk}")  # fmt: skip


def family_supports(family, kernel: str, call) -> bool:
    try:
        kernels.select(family, call, kernel)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("name,kernel,reverse,lengths,resets,masked", list(cases()))
def test_kernel_equals_the_reference_step(name, kernel, reverse, lengths, resets, masked):
    with jax.enable_x64(True):
        family, params, x, carry, mask = sample(name)
        valid = jnp.arange(T)[:, None] < jnp.asarray(LENGTHS)[None] if lengths else None
        r = jnp.asarray(RESETS) if resets else None
        kw = dict(valid=valid, resets=r, mask=mask if masked else None, reverse=bool(reverse))
        call = kernels.Call(
            lengths=bool(lengths), resets=bool(resets), recurrent_dropout=bool(masked),
            dtype=jnp.float64,
        )  # fmt: skip
        chosen = kernels.select(family, call, kernel)

        def run(p, x, c):
            # A kernel takes resets in loop order: in reverse, "restart before step t" is
            # "t + 1 starts a segment" (jaxrnn.functional.stack converts them).
            loop = dict(kw)
            if resets and reverse:
                loop["resets"] = jnp.concatenate([r[1:], jnp.zeros_like(r[:1])])
            return kernels.run(chosen, family, p, x, c, init=c if resets else None, **loop)

        def ref(p, x, c):
            return reference(family, p, x, c, **kw)

        def loss(f):
            def value(p, x, c):
                final, ys = f(p, x, c)
                w = jnp.cos(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
                # real() of a complex carry (LRU) keeps the loss real; its gradient still
                # reaches every real and imaginary part through the recurrence
                finals = sum(jnp.sin(jnp.real(f)).sum() for f in jax.tree.leaves(final))
                return (w * ys).sum() + finals

            return jax.grad(value, argnums=(0, 1, 2))

        got, want = run(params, x, carry), ref(params, x, carry)
        chex.assert_trees_all_close(got, want, rtol=1e-12, atol=1e-12)
        chex.assert_trees_all_close(
            loss(run)(params, x, carry), loss(ref)(params, x, carry), rtol=1e-9, atol=1e-10
        )


def test_every_family_offers_the_scan_kernel_and_reads_back_its_layout():
    for name in families.names():
        family = families.get(name)
        assert "scan" in kernels.offered(family), name
        layout = Layout(name, I, H, num_layers=2, bidirectional=True)
        params = init_params(jax.random.key(0), layout)
        from jaxrnn.params import layout_of

        assert layout_of(name, params) == layout, name
