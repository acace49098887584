"""Every bad input is rejected by jaxrnn's own checks, with a message naming the problem.

Each case asserts the exception type, the message, and that the raising frame is inside
jaxrnn: the check fired before anything reached jax.lax or XLA.
"""

import os
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxrnn
import jaxrnn.linen
import jaxrnn.nnx
from jaxrnn import cells, functional
from jaxrnn.params import Layout, init_param, init_params, layout_of

JAXRNN_DIR = os.path.dirname(jaxrnn.__file__)
X = jnp.ones((7, 4, 5))


def params(mode="gru", **kwargs):
    return init_params(jax.random.key(0), Layout(mode, 5, 6, **kwargs))


def without(p, name):
    return {k: v for k, v in p.items() if k != name}


def check_raised_by_jaxrnn(excinfo):
    """The innermost frame of the traceback is jaxrnn code, not jax's."""
    frames = traceback.extract_tb(excinfo.tb)
    assert frames[-1].filename.startswith(JAXRNN_DIR), frames[-1]


BAD_CALLS = {
    "input feature size": (
        lambda: jaxrnn.gru(params(), jnp.ones((7, 4, 3))),
        ValueError,
        r"input has feature size 3 but weight_ih_l0 expects input_size=5",
    ),
    "input rank": (
        lambda: jaxrnn.gru(params(), jnp.ones((2, 7, 4, 5))),
        ValueError,
        r"input must be \(T, B, I\).*got shape \(2, 7, 4, 5\)",
    ),
    "empty sequence": (
        lambda: jaxrnn.lstm(params("lstm"), jnp.ones((0, 4, 5))),
        ValueError,
        r"x must have at least one time step, got T = 0",
    ),
    "empty batch_first sequence": (
        lambda: jaxrnn.gru(params(), jnp.ones((4, 0, 5)), batch_first=True),
        ValueError,
        r"x must have at least one time step, got T = 0",
    ),
    "integer input": (
        lambda: jaxrnn.gru(params(), jnp.ones((7, 4, 5), jnp.int32)),
        TypeError,
        r"input must be a floating-point array, got dtype int32",
    ),
    "boolean input": (
        lambda: jaxrnn.lstm(params("lstm"), np.ones((7, 4, 5), bool)),
        TypeError,
        r"input must be a floating-point array, got dtype bool",
    ),
    "hx batch": (
        lambda: jaxrnn.gru(params(), X, jnp.zeros((1, 3, 6))),
        ValueError,
        r"hx should have shape \(1, 4, 6\), got \(1, 3, 6\)",
    ),
    "hx layers x directions": (
        lambda: jaxrnn.rnn(params("rnn_tanh", bidirectional=True), X, jnp.zeros((1, 4, 6))),
        ValueError,
        r"hx should have shape \(2, 4, 6\), got \(1, 4, 6\)",
    ),
    "hx unbatched": (
        lambda: jaxrnn.gru(params(), X[:, 0], jnp.zeros((1, 4, 6))),
        ValueError,
        r"hx should have shape \(1, 6\), got \(1, 4, 6\)",
    ),
    "lstm c_0": (
        lambda: jaxrnn.lstm(params("lstm"), X, (jnp.zeros((1, 4, 6)), jnp.zeros((1, 4, 5)))),
        ValueError,
        r"c_0 should have shape \(1, 4, 6\), got \(1, 4, 5\)",
    ),
    "lstm projected h_0": (
        lambda: jaxrnn.lstm(
            params("lstm", proj_size=3), X, (jnp.zeros((1, 4, 6)), jnp.zeros((1, 4, 6)))
        ),
        ValueError,
        r"h_0 should have shape \(1, 4, 3\), got \(1, 4, 6\)",
    ),
    "bare array hx to lstm": (
        lambda: jaxrnn.lstm(params("lstm"), X, jnp.zeros((1, 4, 6))),
        TypeError,
        r"lstm expects hx=\(h_0, c_0\) with shapes \(1, 4, 6\) and \(1, 4, 6\), "
        r"got one array of shape \(1, 4, 6\)",
    ),
    "3-tuple hx to lstm": (
        lambda: jaxrnn.lstm(params("lstm"), X, (jnp.zeros((1, 4, 6)),) * 3),
        TypeError,
        r"lstm expects hx=\(h_0, c_0\).*got a tuple of 3",
    ),
    "tuple hx to gru": (
        lambda: jaxrnn.gru(params(), X, (jnp.zeros((1, 4, 6)), jnp.zeros((1, 4, 6)))),
        TypeError,
        r"gru expects hx as one array of shape \(1, 4, 6\), got a tuple",
    ),
    "integer hx": (
        lambda: jaxrnn.rnn(params("rnn_tanh"), X, jnp.zeros((1, 4, 6), jnp.int32)),
        TypeError,
        r"hx must be a floating-point array, got dtype int32",
    ),
    "lengths shape": (
        lambda: jaxrnn.gru(params(), X, lengths=jnp.array([1, 2, 3])),
        ValueError,
        r"lengths must have shape \(batch,\) = \(4,\), got shape \(3,\)",
    ),
    "lengths 2-D": (
        lambda: jaxrnn.gru(params(), X, lengths=jnp.ones((4, 1), jnp.int32)),
        ValueError,
        r"lengths must have shape \(batch,\) = \(4,\), got shape \(4, 1\)",
    ),
    "lengths below 1": (
        lambda: jaxrnn.gru(params(), X, lengths=jnp.array([0, 2, 3, 4])),
        ValueError,
        r"lengths must lie in \[1, T\] = \[1, 7\], got min 0 and max 4",
    ),
    "lengths above T": (
        lambda: jaxrnn.lstm(params("lstm"), X, lengths=np.array([8, 2, 3, 4])),
        ValueError,
        r"lengths must lie in \[1, T\] = \[1, 7\], got min 2 and max 8",
    ),
    "lengths above T, batch_first": (
        lambda: jaxrnn.gru(params(), jnp.ones((4, 3, 5)), lengths=[1, 2, 3, 4], batch_first=True),
        ValueError,
        r"lengths must lie in \[1, T\] = \[1, 3\], got min 1 and max 4",
    ),
    "float lengths": (
        lambda: jaxrnn.gru(params(), X, lengths=jnp.array([1.0, 2.0, 3.0, 4.0])),
        TypeError,
        r"lengths must be integers, got dtype float32",
    ),
    "lengths with unbatched input": (
        lambda: jaxrnn.gru(params(), X[:, 0], lengths=jnp.array([3])),
        ValueError,
        r"lengths needs a batched input \(T, B, I\); got an unbatched \(T, I\)",
    ),
    "missing key": (
        lambda: jaxrnn.gru(without(params(), "bias_hh_l0"), X),
        ValueError,
        r"missing keys \['bias_hh_l0'\], unknown keys \[\]",
    ),
    "missing middle layer key": (
        lambda: jaxrnn.gru(without(params(num_layers=3), "weight_ih_l1"), X),
        ValueError,
        r"3-layer gru .*missing keys \['weight_ih_l1'\], unknown keys \[\]",
    ),
    "missing reverse key": (
        lambda: jaxrnn.lstm(without(params("lstm", bidirectional=True), "weight_ih_l0_reverse"), X),
        ValueError,
        r"bidirectional lstm .*missing keys \['weight_ih_l0_reverse'\]",
    ),
    "missing projection key": (
        lambda: jaxrnn.lstm(without(params("lstm", num_layers=2, proj_size=3), "weight_hr_l1"), X),
        ValueError,
        r"missing keys \['weight_hr_l1'\]",
    ),
    "missing weight_ih_l0": (
        lambda: jaxrnn.gru(without(params(), "weight_ih_l0"), X),
        ValueError,
        r"params of a gru have no weight_ih_l0; got keys",
    ),
    "unknown key": (
        lambda: jaxrnn.gru({**params(), "weight_hr_l0": jnp.zeros((3, 6))}, X),
        ValueError,
        r"missing keys \[\], unknown keys \['weight_hr_l0'\]",
    ),
    "misshaped key": (
        lambda: jaxrnn.gru({**params(), "bias_ih_l0": jnp.zeros(17)}, X),
        ValueError,
        r"params\['bias_ih_l0'\] should have shape \(18,\), got \(17,\)",
    ),
    "misshaped upper layer": (
        lambda: jaxrnn.rnn(
            {**params("rnn_tanh", num_layers=2), "weight_ih_l1": jnp.zeros((6, 5))}, X
        ),
        ValueError,
        r"params\['weight_ih_l1'\] should have shape \(6, 6\), got \(6, 5\)",
    ),
    "gate count": (
        lambda: jaxrnn.lstm(params("gru"), X),
        ValueError,
        r"params of a lstm: weight_ih must be 2-D with a first axis divisible by 4",
    ),
    "list value": (
        lambda: jaxrnn.gru({**params(), "bias_ih_l0": [0.0] * 18}, X),
        TypeError,
        r"params\['bias_ih_l0'\] must be an array, got list",
    ),
    "integer weights": (
        lambda: jaxrnn.gru({**params(), "bias_ih_l0": jnp.zeros(18, jnp.int32)}, X),
        TypeError,
        r"params\['bias_ih_l0'\] must be a floating-point array, got dtype int32",
    ),
    "non-mapping params": (
        lambda: jaxrnn.gru(list(params().values()), X),
        TypeError,
        r"params must be a mapping of PyTorch state_dict names to arrays, got list",
    ),
    "nonlinearity": (
        lambda: jaxrnn.rnn(params("rnn_tanh"), X, nonlinearity="sigmoid"),
        ValueError,
        r"Unknown nonlinearity 'sigmoid'. Select from 'tanh' or 'relu'.",
    ),
    "dropout above 1": (
        lambda: jaxrnn.gru(params(num_layers=2), X, dropout=1.5, key=jax.random.key(0)),
        ValueError,
        r"dropout should be a number in range \[0, 1\] .*, got 1.5",
    ),
    "dropout negative": (
        lambda: jaxrnn.gru(params(num_layers=2), X, dropout=-0.1),
        ValueError,
        r"dropout should be a number in range \[0, 1\] .*, got -0.1",
    ),
    "dropout nan": (
        lambda: jaxrnn.lstm(params("lstm"), X, dropout=float("nan")),
        ValueError,
        r"dropout should be a number in range \[0, 1\] .*, got nan",
    ),
    "family": (
        lambda: layout_of("transformer", params()),
        ValueError,
        r"unknown family 'transformer'; registered: \[.*'gru'.*\]",
    ),
    "recurrent_init": (
        lambda: init_param(
            jax.random.key(0),
            (18, 6),
            name="weight_hh_l0",
            layout=Layout("gru", 5, 6),
            recurrent_init="xavier",
        ),
        ValueError,
        r"recurrent_init must be 'uniform' or 'orthogonal', got 'xavier'",
    ),
    "stack without layers": (
        lambda: jaxrnn.stack(cells.gru_cell, [], X, []),
        ValueError,
        r"layers must hold at least one layer",
    ),
    "stack directions": (
        lambda: jaxrnn.stack(cells.gru_cell, [[{}], [{}, {}]], X, [[0], [0, 0]]),
        ValueError,
        r"every layer must hold 1 \(forward\) or 2 \(forward, reverse\) parameter sets, "
        r"got \[1, 2\]",
    ),
    "stack carries": (
        lambda: jaxrnn.stack(cells.gru_cell, [[{}, {}]], X, [[0]]),
        ValueError,
        r"carries must be nested like layers \(1 x 2\), got \[1\]",
    ),
    "stack input rank": (
        lambda: jaxrnn.stack(cells.gru_cell, [[{}]], X[0], [[0]]),
        ValueError,
        r"x must be 3-D \(T, B, features...\) or \(B, T, ...\), got shape \(4, 5\)",
    ),
    "nnx dropout": (
        lambda: jaxrnn.nnx.LSTM(5, 6, dropout=1.5, rngs=nnx.Rngs(0)),
        ValueError,
        r"dropout should be a number in range \[0, 1\] .*, got 1.5",
    ),
    "nnx nonlinearity": (
        lambda: jaxrnn.nnx.RNN(5, 6, nonlinearity="gelu", rngs=nnx.Rngs(0)),
        ValueError,
        r"Unknown nonlinearity 'gelu'. Select from 'tanh' or 'relu'.",
    ),
    "nnx load_state_dict layout": (
        lambda: jaxrnn.nnx.GRU(5, 6, rngs=nnx.Rngs(0)).load_state_dict(params(num_layers=2)),
        ValueError,
        r"params describe Layout\(.*num_layers=2.*\), but this module is Layout\(.*"
        r"num_layers=1",
    ),
    "nnx input size": (
        lambda: jaxrnn.nnx.GRU(5, 6, rngs=nnx.Rngs(0))(jnp.ones((7, 4, 2))),
        ValueError,
        r"input has feature size 2 but weight_ih_l0 expects input_size=5",
    ),
    "linen nonlinearity": (
        lambda: jaxrnn.linen.RNN(6, nonlinearity="gelu").init(jax.random.key(0), X),
        ValueError,
        r"Unknown nonlinearity 'gelu'. Select from 'tanh' or 'relu'.",
    ),
    "linen dropout": (
        lambda: jaxrnn.linen.GRU(6, num_layers=2, dropout=-1.0).init(jax.random.key(0), X),
        ValueError,
        r"dropout should be a number in range \[0, 1\] .*, got -1.0",
    ),
    "linen hx": (
        lambda: jaxrnn.linen.LSTM(6).init(jax.random.key(0), X, jnp.zeros((1, 4, 6))),
        TypeError,
        r"lstm expects hx=\(h_0, c_0\)",
    ),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_input_is_named(name):
    call, error, message = BAD_CALLS[name]
    with pytest.raises(error, match=message) as excinfo:
        call()
    assert excinfo.type is error  # not a subclass raised by jax
    check_raised_by_jaxrnn(excinfo)


# Shape, dtype and key checks need no values, so they fire while tracing under jax.jit too.
TRACED = [
    "input feature size",
    "integer input",
    "hx batch",
    "bare array hx to lstm",
    "tuple hx to gru",
    "lengths shape",
    "float lengths",
    "missing key",
    "misshaped key",
]


@pytest.mark.parametrize("name", TRACED)
def test_checks_fire_while_tracing(name):
    call, error, message = BAD_CALLS[name]
    with pytest.raises(error, match=message) as excinfo:
        jax.jit(call)()
    check_raised_by_jaxrnn(excinfo)


def test_traced_lengths_are_checked_for_shape_only():
    """Under jit the values of lengths are unknown; the documented contract is shape + dtype."""
    p = params()
    out, _ = jax.jit(lambda lengths: jaxrnn.gru(p, X, lengths=lengths))(jnp.array([1, 2, 3, 7]))
    assert out.shape == (7, 4, 6)
    with pytest.raises(ValueError, match=r"lengths must have shape \(batch,\) = \(4,\)"):
        jax.jit(lambda lengths: jaxrnn.gru(p, X, lengths=lengths))(jnp.array([1, 2]))


def test_functional_check_lengths_returns_int32():
    got = functional.check_lengths(np.array([1, 7], np.int64), batch=2, steps=7)
    assert got.dtype == jnp.int32 and got.tolist() == [1, 7]
