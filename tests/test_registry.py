"""What the registry promises every registered family, with no family named here.

Shapes come from each family's spec (``feature_ndim``, ``state_shapes``, ``state_dtype``,
``check_sizes``), never from a list of names, so a family added to ``jaxrnn/families/`` and
registered is tested by every test below with no edit to this file:

- its maths, stacked (2 layers), bidirectional and with ``lengths``, against a float64 NumPy
  loop written from its paper in ``tests/references/`` (independent of ``family.cell``; a
  family without one fails here and says where to add it);
- the linen and nnx ``Recurrent`` modules against the functional layer, ``batch_first``;
- ``resets`` against running each episode separately;
- an interop round trip through ``to_torch`` / ``from_torch``.

The kernels against the family's own step are ``tests/test_conformance.py``; streaming is
``tests/test_streaming.py``.
"""

from __future__ import annotations

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references
from flax import nnx

import jaxrnn
import jaxrnn.linen
import jaxrnn.nnx
from jaxrnn import families
from jaxrnn.families.base import Sizes
from jaxrnn.params import Layout, init_params, layer_params

# I = 2H: every layer of a bidirectional stack reads 2H features, so all layers share one
# compiled loop per direction (compilation is most of these tests' time).
T, B, I, H = 5, 3, 8, 4
LENGTHS = np.array([5, 2, 4])
NAMES = families.names()


def spatial(family) -> tuple[int, ...]:
    """The image shape of a family whose input has 3 feature axes (ConvLSTM)."""
    return (4, 4) if family.feature_ndim == 3 else ()


def takes_projection(family) -> bool:
    try:
        family.check_sizes(Sizes(I, H, proj_size=2))
    except ValueError:
        return False
    return True


def np_stack(step, family, layout, params, x, lengths):
    """Stacked, bidirectional layers with PyTorch's packed semantics, in NumPy float64: each
    sequence stops at its length, padded outputs are zero, reverse starts at the last valid
    step. Returns the top layer's output and one ``(D*L, B, ...)`` array per state part."""
    p64 = {k: np.asarray(v) for k, v in params.items()}
    batch = x.shape[1:-1]
    lengths = np.asarray(lengths)
    takes_start = "start" in inspect.signature(step).parameters
    finals = []
    for k in range(layout.num_layers):
        outs = []
        for d in range(layout.num_directions):
            p = layer_params(p64, k, reverse=d == 1)
            dtype = np.dtype(family.state_dtype(jnp.float64))
            shapes = family.state_shapes(layout.sizes(k), batch)
            carry = tuple(np.zeros(s, dtype) for s in shapes)
            ys = [np.empty(0)] * len(x)
            for t in range(len(x) - 1, -1, -1) if d else range(len(x)):
                if takes_start:  # a family whose segment start is a step of its own
                    first = (t == lengths - 1) if d else np.full(lengths.shape, t == 0)
                    new, y = step(p, carry, x[t], start=first)
                else:
                    new, y = step(p, carry, x[t])
                live = t < lengths

                def keep(a, live=live):  # (B,) -> broadcastable against a (B, ...) array
                    return live.reshape((-1,) + (1,) * (a.ndim - 1))

                carry = tuple(np.where(keep(n), n, c) for n, c in zip(new, carry, strict=True))
                ys[t] = np.where(keep(y), y, 0.0)
            outs.append(np.stack(ys))
            finals.append(carry)
        x = np.concatenate(outs, axis=-1)
    return x, tuple(np.stack(parts) for parts in zip(*finals, strict=True))


def test_every_family_has_an_independent_reference():
    missing = [n for n in NAMES if references.step_of(n) is None]
    assert not missing, (
        f"no float64 reference for {missing}: add tests/references/<name>.py defining "
        "STEPS = {name: step} from the paper's equations (see docs/contributing.md)"
    )


CASES = [(n, 0) for n in NAMES] + [(n, 2) for n in NAMES if takes_projection(families.get(n))]


@pytest.mark.parametrize("name,proj", CASES, ids=[f"{n}-proj{p}" for n, p in CASES])
def test_family_matches_its_reference_in_float64(name, proj):
    step = references.step_of(name)
    if step is None:
        pytest.fail(f"no reference for {name} (test_every_family_has_an_independent_reference)")
    family = families.get(name)
    with jax.enable_x64(True):
        layout = Layout(name, I, H, num_layers=2, bidirectional=True, proj_size=proj)
        params = init_params(jax.random.key(0), layout, dtype=jnp.float64)
        # Move every parameter off its initial value, so that gains of 1 and biases of 0
        # (layer norms, RG-LRU) are tested as well.
        keys = jax.random.split(jax.random.key(1), len(params))
        params = {
            n: v + 0.1 * jax.random.normal(k, v.shape, v.dtype)
            for k, (n, v) in zip(keys, params.items(), strict=True)
        }
        x = jax.random.normal(jax.random.key(2), (T, B, *spatial(family), I), jnp.float64)
        # The scan kernel runs family.cell as written; tests/test_conformance.py shows every
        # other kernel equal to it, so the maths of every kernel is pinned to the reference.
        out, state = jaxrnn.layer(name, params, x, lengths=jnp.asarray(LENGTHS), backend="scan")
        want_out, want_state = np_stack(step, family, layout, params, np.asarray(x), LENGTHS)
    got_state = state if isinstance(state, tuple) else (state,)
    # Float64 throughout: the two differ by rounding, a few eps (2.2e-16) per operation,
    # amplified by at most O(T * layers) through the recurrence (~1e-14 here). The kernels use
    # other but equivalent forms (log-space gates, fused matmuls); 1e-10 leaves room for
    # those and still fails on any wrong equation, which moves outputs by > 1e-3.
    np.testing.assert_allclose(np.asarray(out), want_out, rtol=1e-10, atol=1e-10)
    assert len(got_state) == len(want_state) == len(family.state_names)
    for got, want in zip(got_state, want_state, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_linen_and_nnx_modules_equal_the_functional_layer(name):
    family = families.get(name)
    x = jax.random.normal(jax.random.key(0), (B, T, *spatial(family), I))
    lengths = jnp.asarray(LENGTHS)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True, family=name)
    linen = jaxrnn.linen.Recurrent(H, **kw)
    variables = linen.init(jax.random.key(1), x, lengths=lengths)
    want = jaxrnn.layer(name, variables["params"], x, lengths=lengths, batch_first=True)
    chex.assert_trees_all_close(linen.apply(variables, x, lengths=lengths), want)
    module = jaxrnn.nnx.Recurrent(I, H, rngs=nnx.Rngs(0), **kw)
    module.load_state_dict(variables["params"])
    chex.assert_trees_all_close(module(x, lengths=lengths), want)
    chex.assert_shape(want[0], (B, T, *spatial(family), 2 * H))
    state = want[1] if isinstance(want[1], tuple) else (want[1],)
    assert len(state) == len(family.state_names)


EPISODES = [3, 3]  # one batch row holds two episodes back to back (one shape: one compile)


@pytest.mark.parametrize("name", NAMES)
def test_resets_equal_running_each_episode_separately(name):
    family = families.get(name)
    params = init_params(jax.random.key(0), Layout(name, I, H, bidirectional=True))
    steps = sum(EPISODES)
    x = jax.random.normal(jax.random.key(1), (steps, 1, *spatial(family), I))
    resets = np.zeros((steps, 1), bool)
    resets[EPISODES[0]] = True
    out, _ = jaxrnn.layer(name, params, x, resets=resets)
    want = jnp.concatenate(
        [
            jaxrnn.layer(name, params, x[: EPISODES[0]])[0],
            jaxrnn.layer(name, params, x[EPISODES[0] :])[0],
        ]
    )
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_interop_round_trip_keeps_every_parameter(name):
    pytest.importorskip("torch")
    layout = Layout(name, I, H, num_layers=2, bidirectional=True)
    params = init_params(jax.random.key(0), layout)
    back = jaxrnn.interop.from_torch(jaxrnn.interop.to_torch(params))
    assert list(back) == list(params)
    for k, v in params.items():
        np.testing.assert_array_equal(back[k], v)
    assert jaxrnn.params.layout_of(name, back) == layout


@pytest.mark.parametrize("name", NAMES)
def test_orthogonal_init_applies_to_a_recurrent_matrix_or_is_refused(name):
    layout = Layout(name, I, H)
    recurrent = layout.spec.param_shapes(layout.sizes(0)).get("weight_hh")
    if recurrent is not None and len(recurrent) == 2:
        params = init_params(jax.random.key(0), layout, recurrent_init="orthogonal")
        block = np.asarray(params["weight_hh_l0"][:H], np.float64)  # one (H, H) gate block
        np.testing.assert_allclose(block @ block.T, np.eye(H), atol=1e-5)
    else:
        with pytest.raises(ValueError, match=f"orthogonal.*the {name} family has"):
            init_params(jax.random.key(0), layout, recurrent_init="orthogonal")


@pytest.mark.parametrize("name", NAMES)
def test_errors_name_the_familys_own_parameters(name):
    family = families.get(name)
    params = init_params(jax.random.key(0), Layout(name, I, H))
    x = jnp.ones((T, B, *spatial(family), I + 1))
    with pytest.raises(ValueError, match=r"input has feature size 9 but (\w+_l0) expects") as e:
        jaxrnn.layer(name, params, x)
    assert e.value.args[0].split(" but ")[1].split()[0] in params
    if not takes_projection(family):  # refused in words, never silently ignored
        with pytest.raises(ValueError, match=r"proj.*got proj_size=2"):
            family.check_sizes(Sizes(I, H, proj_size=2))
