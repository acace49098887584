"""Property tests: random sizes and options keep PyTorch parity and packed-sequence semantics."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    KINDS,
    config,
    jax_forward,
    max_abs_diff,
    random_data,
    record,
    torch_forward,
    torch_module,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxrnn.interop import from_torch

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

pytest.importorskip("torch")

# Sizes are kept in small ranges so that hypothesis's examples share compiled scans.
CASE = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(KINDS),
        "steps": st.integers(1, 6),
        "batch": st.integers(1, 4),
        "input_size": st.integers(1, 4),
        "hidden_size": st.integers(2, 4),
        "num_layers": st.integers(1, 3),
        "bidirectional": st.booleans(),
        "batch_first": st.booleans(),
        "bias": st.booleans(),
        "with_state": st.booleans(),
        "with_lengths": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
)


def make_case(c):
    cfg = config(
        c["kind"],
        proj=c["hidden_size"] - 1,
        input_size=c["input_size"],
        hidden_size=c["hidden_size"],
        num_layers=c["num_layers"],
        bias=c["bias"],
        batch_first=c["batch_first"],
        bidirectional=c["bidirectional"],
    )
    x, hx, lengths = random_data(
        cfg,
        np.random.default_rng(c["seed"]),
        steps=c["steps"],
        batch=c["batch"],
        with_state=c["with_state"],
        with_lengths=c["with_lengths"],
    )
    return cfg, x, hx, lengths


@settings(max_examples=25, deadline=None)
@given(CASE)
def test_random_configurations_match_torch(c):
    cfg, x, hx, lengths = make_case(c)
    m = torch_module(cfg, seed=c["seed"])
    want = torch_forward(m, cfg, x, hx, lengths)
    got = jax_forward(cfg, from_torch(m), x, hx, lengths)
    errors = [max_abs_diff(g, w) for g, w in zip(got, want, strict=True) if w is not None]
    record("property", max(errors), str(c))
    assert max(errors) <= 1e-5, errors


@settings(max_examples=10, deadline=None)
@given(CASE, st.data())
def test_each_sequence_is_its_own_truncated_run(c, data):
    """With lengths, sequence b's output rows and final state are those of a batch of one
    holding only its first ``lengths[b]`` steps, and its padded rows are zero."""
    c = {**c, "with_lengths": True}
    cfg, x, hx, lengths = make_case(c)
    params = from_torch(torch_module(cfg, seed=c["seed"]))
    out, h, cell = jax_forward(cfg, params, x, hx, lengths)
    b = data.draw(st.integers(0, c["batch"] - 1), label="b")
    n = int(lengths[b])
    xb = x[b : b + 1, :n] if cfg.batch_first else x[:n, b : b + 1]
    hb = None if hx is None else jax_take(hx, b)
    out_b, h_b, cell_b = jax_forward(cfg, params, xb, hb, None)

    rows = np.asarray(out)[b] if cfg.batch_first else np.asarray(out)[:, b]
    rows_b = np.asarray(out_b)[0] if cfg.batch_first else np.asarray(out_b)[:, 0]
    np.testing.assert_allclose(rows[:n], rows_b, atol=1e-6)
    assert not np.any(rows[n:])
    np.testing.assert_allclose(np.asarray(h)[:, b], np.asarray(h_b)[:, 0], atol=1e-6)
    if cell is not None:
        np.testing.assert_allclose(np.asarray(cell)[:, b], np.asarray(cell_b)[:, 0], atol=1e-6)


def jax_take(hx, b):
    """The initial state of sequence ``b`` alone, batch axis kept."""
    if isinstance(hx, tuple):
        return tuple(s[:, b : b + 1] for s in hx)
    return jnp.asarray(hx)[:, b : b + 1]
