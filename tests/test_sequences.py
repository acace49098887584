"""Sequence utilities against NumPy loops."""

import chex
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxrnn.sequences import (
    last_valid,
    lengths_to_mask,
    masked_mean,
    pad_sequences,
    reverse_padded,
)


def _batch(lengths, t, h=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(len(lengths), t, h)).astype(np.float32), np.array(lengths, np.int32)


def test_pad_sequences_matches_a_loop():
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 2)).astype(np.float32) for n in (3, 1, 5)]
    padded, lengths = pad_sequences(seqs, padding_value=-1.0)
    chex.assert_shape(padded, (3, 5, 2))
    np.testing.assert_array_equal(lengths, [3, 1, 5])
    for b, s in enumerate(seqs):
        np.testing.assert_array_equal(padded[b, : len(s)], s)
        np.testing.assert_array_equal(padded[b, len(s) :], -1.0)
    fixed, _ = pad_sequences(seqs, max_len=8, batch_first=False)
    chex.assert_shape(fixed, (8, 3, 2))
    np.testing.assert_array_equal(fixed[:, 0][:3], seqs[0])
    tokens, _ = pad_sequences([[1, 2], [3]])
    assert tokens.dtype == np.int32
    np.testing.assert_array_equal(tokens, [[1, 2], [3, 0]])


def test_pad_sequences_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one sequence"):
        pad_sequences([])
    with pytest.raises(ValueError, match=r"seqs\[1\] is \(3,\)"):
        pad_sequences([np.zeros((2, 2)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match="max_len=1 is shorter than the longest sequence"):
        pad_sequences([np.zeros(2)], max_len=1)
    with pytest.raises(TypeError, match="seqs must be a list of arrays"):
        pad_sequences(np.zeros((2, 3)))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=4), st.integers(0, 3))
def test_mask_reverse_and_pooling_match_loops(lengths, extra):
    t = max(lengths) + extra or 1
    x, lengths = _batch(lengths, t)
    mask = np.asarray(lengths_to_mask(lengths, t))
    rev = np.asarray(reverse_padded(x, lengths))
    mean = np.asarray(masked_mean(x, lengths))
    last = np.asarray(last_valid(x, lengths))
    for b, n in enumerate(lengths):
        for s in range(t):
            assert mask[b, s] == (s < n)
            np.testing.assert_array_equal(rev[b, s], x[b, n - 1 - s] if s < n else x[b, s])
        want = x[b, :n].mean(0) if n else np.zeros(3)
        np.testing.assert_allclose(mean[b], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(last[b], x[b, max(n - 1, 0)])


def test_time_major_and_jit_agree_with_batch_major():
    x, lengths = _batch([4, 2, 1], 5)
    xt = np.swapaxes(x, 0, 1)
    for f in (reverse_padded, masked_mean, last_valid):
        want = np.asarray(f(x, lengths))
        got = jax.jit(lambda a, n, f=f: f(a, n, batch_first=False))(xt, lengths)
        if f is reverse_padded:
            got = np.swapaxes(got, 0, 1)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_array_equal(
        lengths_to_mask(lengths, 5, batch_first=False), lengths_to_mask(lengths, 5).T
    )
    np.testing.assert_array_equal(reverse_padded(reverse_padded(x, lengths), lengths), x)


def test_bad_lengths_are_named():
    x, _ = _batch([2, 2], 3)
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\), got \(3,\)"):
        masked_mean(x, np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="lengths must be integers, got dtype float32"):
        last_valid(x, np.array([1.0, 2.0], np.float32))
    with pytest.raises(ValueError, match="x must be at least 2-D"):
        reverse_padded(np.zeros(3), np.array([1, 2, 3]))
