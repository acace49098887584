"""The Flax front ends: linen and nnx agree with functional, initialize as PyTorch does, and
apply dropout between layers only, only in training mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import KINDS, config, jax_forward, random_data, torch_forward, torch_module
from flax import nnx

import jaxrnn.linen
import jaxrnn.nnx
from jaxrnn.interop import from_torch
from jaxrnn.params import Layout, init_params

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

torch = pytest.importorskip("torch")

MODE = {"rnn_tanh": "rnn", "rnn_relu": "rnn", "lstm": "lstm", "lstm_proj": "lstm", "gru": "gru"}


def linen_module(cfg, **kwargs):
    extra = {"proj_size": cfg.proj_size} if cfg.proj_size else {}
    if cfg.kind.startswith("rnn"):
        extra["nonlinearity"] = cfg.kind[4:]
    cls = {"rnn": jaxrnn.linen.RNN, "lstm": jaxrnn.linen.LSTM, "gru": jaxrnn.linen.GRU}
    return cls[MODE[cfg.kind]](
        hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, bias=cfg.bias,
        batch_first=cfg.batch_first, bidirectional=cfg.bidirectional, **extra, **kwargs,
    )  # fmt: skip


def nnx_module(cfg, rngs=None, **kwargs):
    extra = {"proj_size": cfg.proj_size} if cfg.proj_size else {}
    if cfg.kind.startswith("rnn"):
        extra["nonlinearity"] = cfg.kind[4:]
    cls = {"rnn": jaxrnn.nnx.RNN, "lstm": jaxrnn.nnx.LSTM, "gru": jaxrnn.nnx.GRU}
    return cls[MODE[cfg.kind]](
        cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers, bias=cfg.bias,
        batch_first=cfg.batch_first, bidirectional=cfg.bidirectional, **extra, **kwargs,
        rngs=rngs or nnx.Rngs(0),
    )  # fmt: skip


def hx_arg(cfg, hx):
    if hx is None:
        return None
    return tuple(map(jnp.asarray, hx)) if cfg.is_lstm else jnp.asarray(hx)


def unpack(cfg, result):
    out, state = result
    return (out, *state) if cfg.is_lstm else (out, state)


# --- the three front ends compute the same function ------------------------------------------

FRONTEND_CASES = [
    config(kind, num_layers=2, bidirectional=True, batch_first=bf)
    for kind, bf in zip(KINDS, [False, True, False, True, False], strict=True)
]
JITTED = {"rnn_relu", "lstm_proj", "gru"}  # jit compiles whole programs: a subset keeps it fast


@pytest.mark.parametrize(
    "cfg,jit",
    [(c, False) for c in FRONTEND_CASES] + [(c, True) for c in FRONTEND_CASES if c.kind in JITTED],
    ids=lambda v: v.kind if hasattr(v, "kind") else ("jit" if v else "eager"),
)
def test_linen_nnx_functional_agree(cfg, jit):
    """Identical numbers from the three front ends; under jit, equal to the eager ones."""
    m = torch_module(cfg, seed=5)
    params = from_torch(m)
    x, hx, lengths = random_data(cfg, np.random.default_rng(5), with_lengths=True)
    want = jax_forward(cfg, params, x, hx, lengths)
    for w, t in zip(want, torch_forward(m, cfg, x, hx, lengths), strict=True):
        if t is not None:
            np.testing.assert_allclose(w, t, atol=1e-5)
    x, hx, lengths = jnp.asarray(x), hx_arg(cfg, hx), jnp.asarray(lengths)

    linen = linen_module(cfg)
    apply = jax.jit(linen.apply) if jit else linen.apply
    got_linen = unpack(cfg, apply({"params": params}, x, hx, lengths=lengths))

    model = nnx_module(cfg)
    model.load_state_dict(params)
    call = nnx.jit(lambda m, *a, **k: m(*a, **k)) if jit else (lambda m, *a, **k: m(*a, **k))
    got_nnx = unpack(cfg, call(model, x, hx, lengths=lengths))

    for w, gl, gn in zip(want, got_linen, got_nnx, strict=False):
        if jit:
            np.testing.assert_allclose(gl, w, atol=1e-6)
            np.testing.assert_allclose(gn, w, atol=1e-6)
        else:
            np.testing.assert_array_equal(gl, w)
            np.testing.assert_array_equal(gn, w)


# --- parameters: names, shapes, state_dict round trips ----------------------------------------

SHAPE_CASES = [
    config(kind, num_layers=layers, bidirectional=bidir, bias=bias)
    for kind in KINDS
    for layers, bidir, bias in [(1, False, True), (3, True, False)]
]


@pytest.mark.parametrize("cfg", SHAPE_CASES, ids=lambda c: f"{c.kind}-L{c.num_layers}")
def test_initial_params_have_torchs_names_and_shapes(cfg):
    want = {k: tuple(v.shape) for k, v in torch_module(cfg).state_dict().items()}
    x = jnp.zeros((3, 2, cfg.input_size))
    # abstract evaluation: shapes and dtypes without compiling anything
    linen_params = jax.eval_shape(linen_module(cfg).init, jax.random.key(0), x)["params"]
    assert {k: v.shape for k, v in linen_params.items()} == want
    model = nnx.eval_shape(lambda: nnx_module(cfg))
    assert {k: v.shape for k, v in nnx.to_flat_state(nnx.state(model, nnx.Param))} == {
        (k,): v for k, v in want.items()
    }


def test_nnx_state_dict_round_trip():
    cfg = config("lstm_proj", num_layers=2, bidirectional=True)
    m = torch_module(cfg, seed=3)
    model = nnx_module(cfg)
    model.load_state_dict(from_torch(m))
    state = model.state_dict()
    assert list(state) == list(m.state_dict())  # torch's order too
    for name, t in m.state_dict().items():
        np.testing.assert_array_equal(state[name], t.numpy())
    other = torch_module(cfg, seed=4)
    other.load_state_dict(jaxrnn.interop.to_torch(state), strict=True)
    x, hx, lengths = random_data(cfg, np.random.default_rng(0), with_lengths=True)
    got = unpack(cfg, model(jnp.asarray(x), hx_arg(cfg, hx), lengths=jnp.asarray(lengths)))
    for g, w in zip(got, torch_forward(other, cfg, x, hx, lengths), strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_nnx_load_state_dict_keeps_the_module_dtype():
    """As torch's load_state_dict: values are copied into the existing parameters' dtype."""
    model = jaxrnn.nnx.GRU(5, 6, rngs=nnx.Rngs(0))
    source = {k: v.astype(jnp.bfloat16) for k, v in model.state_dict().items()}
    model.load_state_dict(source)
    for name, value in model.state_dict().items():
        assert value.dtype == jnp.float32
        np.testing.assert_array_equal(value, np.asarray(source[name], np.float32))


def test_param_dtype():
    x = jnp.zeros((3, 2, 5), jnp.bfloat16)
    module = jaxrnn.linen.GRU(6, param_dtype=jnp.bfloat16)
    params = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
    assert {v.dtype for v in params.values()} == {jnp.dtype(jnp.bfloat16)}
    model = jaxrnn.nnx.LSTM(5, 6, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert {v.dtype for v in model.state_dict().values()} == {jnp.dtype(jnp.bfloat16)}


# --- initialization ---------------------------------------------------------------------------


def all_params(kind, hidden, **kwargs):
    """Initial params of linen, nnx and init_params for one configuration (3 dicts)."""
    cfg = config(kind, proj=hidden // 2, input_size=7, hidden_size=hidden, num_layers=2,
                 bidirectional=True)  # fmt: skip
    layout = Layout(kind.removesuffix("_proj"), 7, hidden, 2, True, True, cfg.proj_size)
    linen = linen_module(cfg, **kwargs).init(jax.random.key(1), jnp.zeros((2, 1, 7)))["params"]
    return [
        dict(linen),
        nnx_module(cfg, **kwargs).state_dict(),
        init_params(jax.random.key(2), layout, **kwargs),
    ]


@pytest.mark.parametrize("kind", ["lstm_proj", "gru"])
def test_default_init_is_torchs_uniform(kind):
    """Every parameter is U(-1/sqrt(H), 1/sqrt(H)), the range torch draws from."""
    hidden = 16
    bound = 1 / np.sqrt(hidden)
    torch_values = np.concatenate([
        t.numpy().ravel() for t in torch_module(config(
            kind, proj=8, input_size=7, hidden_size=hidden, num_layers=2,
            bidirectional=True)).state_dict().values()
    ])  # fmt: skip
    assert np.abs(torch_values).max() <= bound
    variants = all_params(kind, hidden)
    for params in variants:
        for name, p in params.items():
            p = np.asarray(p, np.float64).ravel()
            assert np.abs(p).max() <= bound, name
        values = np.concatenate([np.asarray(p, np.float64).ravel() for p in params.values()])
        n = values.size  # thousands of draws: mean, variance and range of U(-b, b)
        assert abs(values.mean()) < 5 * bound / np.sqrt(3 * n)
        assert abs(values.var() / (bound**2 / 3) - 1) < 5 * np.sqrt(0.8 / n)
        assert values.max() > 0.99 * bound and values.min() < -0.99 * bound
        # Same range as torch: neither sample's extremes stick out of the other's.
        assert abs(np.abs(values).max() - np.abs(torch_values).max()) < 0.01 * bound


@pytest.mark.parametrize("kind", ["rnn_relu", "lstm_proj", "gru"])
def test_orthogonal_recurrent_init(kind):
    variants = all_params(kind, 16, recurrent_init="orthogonal")
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[MODE[kind]]
    for params in variants:
        for name, p in params.items():
            p = np.asarray(p, np.float64)
            if not name.startswith("weight_hh"):
                assert np.abs(p).max() <= 1 / np.sqrt(16), name  # the rest stays uniform
                continue
            blocks = np.split(p, gates, axis=0)
            for block in blocks:  # (H, P): orthonormal rows if H <= P, else columns
                gram = block @ block.T if block.shape[0] <= block.shape[1] else block.T @ block
                np.testing.assert_allclose(gram, np.eye(len(gram)), atol=1e-5)
            if gates > 1:
                assert not np.allclose(blocks[0], blocks[1])


# --- dropout between layers -------------------------------------------------------------------

RATE = 0.3


def probe_params(num_layers, bidirectional, hidden=16, input_size=5):
    """A relu RNN whose layers above the first copy their input: ``W_ih`` picks the matching
    direction's half of the layer below, ``W_hh = 0``, no bias. Its output is then exactly
    what reaches the top layer's input, so dropout between layers can be read off it: as
    the bottom layer's output (>= 0, from relu) times the dropout masks applied on the way."""
    layout = Layout("rnn_relu", input_size, hidden, num_layers, False, bidirectional)
    params = init_params(jax.random.key(7), layout)
    eye = jnp.eye(hidden)
    for k in range(1, num_layers):
        if bidirectional:
            params[f"weight_ih_l{k}"] = jnp.concatenate([eye, 0 * eye], axis=1)
            params[f"weight_ih_l{k}_reverse"] = jnp.concatenate([0 * eye, eye], axis=1)
            params[f"weight_hh_l{k}_reverse"] = 0 * eye
        else:
            params[f"weight_ih_l{k}"] = eye
        params[f"weight_hh_l{k}"] = 0 * eye
    return params


def bottom_layer(params):
    return {k: v for k, v in params.items() if k.endswith(("_l0", "_l0_reverse"))}


def probe_input(seed=0, steps=16, batch=32, input_size=5):
    return jax.random.normal(jax.random.key(seed), (steps, batch, input_size))


def check_masked(out, y0, layers_below, rate=RATE):
    """``out`` is ``y0`` with an independent dropout mask per layer boundary."""
    out, y0 = np.asarray(out, np.float64), np.asarray(y0, np.float64)
    scale = (1 - rate) ** -layers_below
    live = y0 > 0
    kept = out[live] != 0
    np.testing.assert_allclose(out[live][kept], scale * y0[live][kept], rtol=1e-5)
    assert not np.any(out[~live])
    n = live.sum()
    keep = (1 - rate) ** layers_below
    assert abs(kept.mean() - keep) < 5 * np.sqrt(keep * (1 - keep) / n)
    # Inverted dropout preserves the mean: E[out] = E[y0].
    assert abs(out.sum() / y0.sum() - 1) < 5 * np.sqrt((1 - keep) / keep / n) * 2


@pytest.mark.parametrize("num_layers,bidirectional", [(2, True), (3, False)])
def test_functional_dropout_is_between_layers(num_layers, bidirectional):
    params = probe_params(num_layers, bidirectional)
    x = probe_input()
    y0, _ = jaxrnn.rnn(bottom_layer(params), x, nonlinearity="relu")
    out, _ = jaxrnn.rnn(params, x, nonlinearity="relu", dropout=RATE, key=jax.random.key(3))
    check_masked(out, y0, num_layers - 1)
    # without a key (evaluation), the probe passes the bottom layer through unchanged
    out, _ = jaxrnn.rnn(params, x, nonlinearity="relu", dropout=RATE)
    np.testing.assert_allclose(out, y0, rtol=1e-6)


def test_linen_dropout_only_in_training_and_between_layers():
    params = probe_params(2, True)
    x = probe_input()
    y0, _ = jaxrnn.rnn(bottom_layer(params), x, nonlinearity="relu")
    model = jaxrnn.linen.RNN(16, num_layers=2, bidirectional=True, bias=False,
                             nonlinearity="relu", dropout=RATE)  # fmt: skip
    variables = {"params": params}

    def train(seed):
        rngs = {"dropout": jax.random.key(seed)}
        return model.apply(variables, x, deterministic=False, rngs=rngs)[0]

    check_masked(train(0), y0, 1)
    np.testing.assert_array_equal(train(0), train(0))  # reproducible per key
    assert not np.array_equal(train(0), train(1))
    np.testing.assert_allclose(model.apply(variables, x, deterministic=True)[0], y0, rtol=1e-6)
    field = model.clone(deterministic=False)  # the field instead of the call argument
    rngs = {"dropout": jax.random.key(0)}
    np.testing.assert_array_equal(field.apply(variables, x, rngs=rngs)[0], train(0))

    # one layer: nothing between layers, so training changes nothing
    one = jaxrnn.linen.LSTM(16, dropout=0.5)
    v1 = one.init(jax.random.key(0), x, deterministic=True)
    np.testing.assert_array_equal(
        one.apply(v1, x, deterministic=False, rngs={"dropout": jax.random.key(1)})[0],
        one.apply(v1, x, deterministic=True)[0],
    )


def test_nnx_dropout_only_in_train_mode_and_between_layers():
    params = probe_params(2, True)
    x = probe_input()
    y0, _ = jaxrnn.rnn(bottom_layer(params), x, nonlinearity="relu")

    def model(seed):
        m = jaxrnn.nnx.RNN(5, 16, num_layers=2, nonlinearity="relu", bias=False,
                           dropout=RATE, bidirectional=True, rngs=nnx.Rngs(seed))  # fmt: skip
        m.load_state_dict(params)
        return m

    m = model(0)
    first, second = m(x)[0], m(x)[0]  # a fresh module is in training mode, like torch's
    check_masked(first, y0, 1)
    check_masked(second, y0, 1)
    assert not np.array_equal(first, second)  # a new mask each call
    np.testing.assert_array_equal(model(0)(x)[0], first)  # reproducible per seed
    assert not np.array_equal(model(1)(x)[0], first)
    m.eval()
    np.testing.assert_allclose(m(x)[0], y0, rtol=1e-6)
    assert not np.array_equal(m(x, deterministic=False)[0], m(x)[0])
    m.train()
    assert not np.array_equal(m(x)[0], m(x, deterministic=True)[0])
    np.testing.assert_allclose(m(x, deterministic=True)[0], y0, rtol=1e-6)

    one = jaxrnn.nnx.GRU(5, 16, dropout=0.5, rngs=nnx.Rngs(0))
    train_out = one(x)[0]
    one.eval()
    np.testing.assert_array_equal(train_out, one(x)[0])


def test_nnx_layers_with_named_shape_options_take_the_other_options_too():
    layer = jaxrnn.nnx.LRU(4, 8, state_size=6, options={"r_min": 0.5}, rngs=nnx.Rngs(0))
    options = dict(layer.layout.options)
    assert options["r_min"] == 0.5 and options["state_size"] == 6
    with pytest.raises(ValueError, match=r"pass state_size=\.\.\. as keyword"):
        jaxrnn.nnx.LRU(4, 8, options={"state_size": 6}, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bogus'\]"):
        jaxrnn.nnx.MLSTM(4, 8, options={"bogus": 1}, rngs=nnx.Rngs(0))
