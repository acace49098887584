"""Constructor argument checks against live ``torch.nn`` 2.13 (issue 13, item 1).

Each probe builds ``torch.nn.{RNN,LSTM,GRU}`` with the same arguments (and runs it, since
some of torch's checks only fire in ``forward``), then builds jaxrnn's linen module (and
``init``s it on a small input) and its nnx module. Where torch raises, jaxrnn raises the
same exception type with torch's message text in it (jaxrnn adds ``, got ...``); where
torch's exception is an artefact of its internals, jaxrnn raises a ``TypeError`` or
``ValueError`` that names the argument; where torch accepts, jaxrnn accepts and computes
the same thing.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxrnn
import jaxrnn.linen
import jaxrnn.nnx
import jaxrnn.params
from jaxrnn.interop import from_torch

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

torch = pytest.importorskip("torch")

I, H, T, B = 4, 6, 5, 3
X = jnp.ones((T, B, I))

# (id, torch class, keyword arguments, how torch's answer is compared)
#   "same": torch raises; jaxrnn raises the same type, message containing torch's text.
#   "artefact": torch fails inside its internals (or not at all where jaxrnn is stricter);
#               jaxrnn raises TypeError/ValueError naming the argument.
#   "accept": torch accepts; jaxrnn must accept.
PROBES = [
    ("hidden_size=0", "RNN", {"hidden_size": 0}, "same"),
    ("hidden_size=-1", "RNN", {"hidden_size": -1}, "same"),
    ("hidden_size=2.5", "RNN", {"hidden_size": 2.5}, "same"),
    ("hidden_size='6'", "RNN", {"hidden_size": "6"}, "same"),
    ("hidden_size=True", "RNN", {"hidden_size": True}, "artefact"),
    ("num_layers=0", "RNN", {"num_layers": 0}, "same"),
    ("num_layers=-1", "RNN", {"num_layers": -1}, "same"),
    ("num_layers=2.0", "RNN", {"num_layers": 2.0}, "artefact"),
    ("bias=0", "RNN", {"bias": 0}, "same"),
    ("bias=1", "RNN", {"bias": 1}, "same"),
    ("bias='no'", "RNN", {"bias": "no"}, "same"),
    ("batch_first=1", "RNN", {"batch_first": 1}, "same"),
    ("batch_first='False'", "RNN", {"batch_first": "False"}, "same"),
    ("bidirectional=0", "RNN", {"bidirectional": 0}, "artefact"),
    ("bidirectional=1", "RNN", {"bidirectional": 1}, "artefact"),
    ("bidirectional='True'", "RNN", {"bidirectional": "True"}, "artefact"),
    ("dropout=-0.1", "RNN", {"dropout": -0.1, "num_layers": 2}, "same"),
    ("dropout=1.5", "RNN", {"dropout": 1.5, "num_layers": 2}, "same"),
    ("dropout='0.5'", "RNN", {"dropout": "0.5", "num_layers": 2}, "same"),
    ("dropout=True", "RNN", {"dropout": True, "num_layers": 2}, "same"),
    ("dropout=1.0", "LSTM", {"dropout": 1.0, "num_layers": 2}, "accept"),
    ("proj_size=-1", "LSTM", {"proj_size": -1}, "same"),
    ("proj_size=hidden_size", "LSTM", {"proj_size": H}, "same"),
    ("proj_size>hidden_size", "LSTM", {"proj_size": H + 1}, "same"),
    ("proj_size=2.0", "LSTM", {"proj_size": 2.0}, "artefact"),
    ("proj_size=2 (GRU)", "GRU", {"proj_size": 2}, "same"),
    ("proj_size=2 (RNN)", "RNN", {"proj_size": 2}, "same"),
    ("nonlinearity='sigmoid'", "RNN", {"nonlinearity": "sigmoid"}, "same"),
    ("nonlinearity='RELU'", "RNN", {"nonlinearity": "RELU"}, "same"),
]
INPUT_SIZE_PROBES = [
    ("input_size=0", {"input_size": 0}, "same"),
    ("input_size=-1", {"input_size": -1}, "same"),
    ("input_size=4.0", {"input_size": 4.0}, "same"),
    ("input_size='4'", {"input_size": "4"}, "same"),
]


def arg_name(kwargs):
    """The argument a probe is about (the first key but num_layers when it only helps)."""
    return next(k for k in kwargs if not (k == "num_layers" and len(kwargs) > 1))


def torch_outcome(cls_name, kwargs):
    """torch's exception (or None) for building the module and running it on X."""
    kwargs = {"input_size": I, "hidden_size": H} | kwargs
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = getattr(torch.nn, cls_name)(**kwargs)
            module.eval()
            module(torch.ones(T, B, kwargs["input_size"]))
    except Exception as e:  # whatever torch raises is the reference
        return e
    return None


def linen_run(cls_name, kwargs):
    kwargs = {"hidden_size": H} | kwargs
    kwargs.pop("input_size", None)
    module = getattr(jaxrnn.linen, cls_name)(**kwargs)
    variables = module.init(jax.random.key(0), X, deterministic=True)
    return module.apply(variables, X, deterministic=True)[0]


def nnx_run(cls_name, kwargs):
    kwargs = {"input_size": I, "hidden_size": H} | kwargs
    module = getattr(jaxrnn.nnx, cls_name)(**kwargs, rngs=nnx.Rngs(0))
    module.eval()
    return module(X)[0]


RUNNERS = {"linen": linen_run, "nnx": nnx_run}


def check_like_torch(run, cls_name, kwargs, kind):
    expected = torch_outcome(cls_name, kwargs)
    if kind == "accept":
        assert expected is None, expected
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert run(cls_name, kwargs).shape[:2] == (T, B)
        return
    name = arg_name(kwargs)
    with pytest.raises((TypeError, ValueError)) as excinfo, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(cls_name, kwargs)
    message = str(excinfo.value)
    if kind == "same":
        assert expected is not None, f"torch accepts {kwargs}"
        assert type(excinfo.value) is type(expected), (expected, excinfo.value)
        assert str(expected) in message
    else:
        assert name in message, message
    if kind == "same" and name != "nonlinearity":  # torch's text already names the value
        assert "got" in message, f"jaxrnn should say what came: {message}"


@pytest.mark.parametrize("api", sorted(RUNNERS))
@pytest.mark.parametrize(("cls_name", "kwargs", "kind"), [p[1:] for p in PROBES],
                         ids=[p[0] for p in PROBES])  # fmt: skip
def test_constructor_raises_like_torch(api, cls_name, kwargs, kind):
    check_like_torch(RUNNERS[api], cls_name, kwargs, kind)


@pytest.mark.parametrize(("kwargs", "kind"), [p[1:] for p in INPUT_SIZE_PROBES],
                         ids=[p[0] for p in INPUT_SIZE_PROBES])  # fmt: skip
@pytest.mark.parametrize("cls_name", ["RNN", "LSTM", "GRU"])
def test_nnx_input_size_raises_like_torch(cls_name, kwargs, kind):
    check_like_torch(nnx_run, cls_name, kwargs, kind)


# The other families take the same generic checks, with torch.nn.RNN's answers as reference.
GENERIC_PROBES = [
    p for p in PROBES if p[1] == "RNN" and arg_name(p[2]) not in ("nonlinearity", "proj_size")
] + [(p[0], "RNN", p[1], p[2]) for p in INPUT_SIZE_PROBES]
FAMILIES = ["LayerNormLSTM", "ConvLSTM", "MinGRU", "MinLSTM", "LRU", "RGLRU"]


def family_run(api, family, kwargs):
    """Build ``family``'s module (linen or nnx) with ``kwargs``; nothing runs."""
    kwargs = {"input_size": I, "hidden_size": H} | kwargs
    if api == "linen":
        kwargs.pop("input_size")
        return getattr(jaxrnn.linen, family)(**kwargs)
    return getattr(jaxrnn.nnx, family)(**kwargs, rngs=nnx.Rngs(0))


GENERIC_CASES = [
    pytest.param(api, family, kwargs, kind, id=f"{api}-{family}-{probe}")
    for probe, _, kwargs, kind in GENERIC_PROBES
    for family in FAMILIES
    for api in ("linen", "nnx")
    if not (api == "linen" and "input_size" in kwargs)  # linen reads it off the input
]


@pytest.mark.parametrize(("api", "family", "kwargs", "kind"), GENERIC_CASES)
def test_every_family_constructor_checks_like_torch_rnn(api, family, kwargs, kind):
    expected = torch_outcome("RNN", kwargs)
    with pytest.raises((TypeError, ValueError)) as excinfo, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        family_run(api, family, kwargs)
    if kind == "same":
        assert type(excinfo.value) is type(expected)
        assert str(expected) in str(excinfo.value)
    else:
        assert arg_name(kwargs) in str(excinfo.value)


def test_linen_rnn_rejects_a_bad_nonlinearity_at_construction_like_torch():
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        jaxrnn.linen.RNN(H, nonlinearity="gelu")


@pytest.mark.parametrize("api", ["linen", "nnx"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_rejects_proj_size_at_hidden_size(api, family):
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        family_run(api, family, {"proj_size": H})


@pytest.mark.parametrize("api", ["linen", "nnx"])
@pytest.mark.parametrize("cls_name", ["RNN", "LSTM", "GRU", "MinGRU", "LRU"])
def test_one_layer_dropout_warns_like_torch(api, cls_name):
    with pytest.warns(UserWarning) as torch_record:
        getattr(torch.nn, cls_name if cls_name in ("RNN", "LSTM", "GRU") else "RNN")(
            I, H, dropout=0.5
        )
    with pytest.warns(UserWarning) as jax_record:
        family_run(api, cls_name, {"dropout": 0.5})
    assert [str(w.message) for w in jax_record] == [str(w.message) for w in torch_record]


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_no_dropout_warning_with_two_layers(api):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        family_run(api, "LSTM", {"dropout": 0.5, "num_layers": 2})


# dropout=1.0 is accepted by torch: identity in eval, zeros between layers in training.


def torch_lstm_dropout_one():
    torch.manual_seed(0)
    return torch.nn.LSTM(I, H, num_layers=2, dropout=1.0).double()


def x64_input():
    return np.random.default_rng(0).standard_normal((T, B, I))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_dropout_one_matches_torch(api, train):
    reference = torch_lstm_dropout_one()
    reference.train(train)
    x = x64_input()
    with torch.no_grad():
        expected, (h_n, c_n) = reference(torch.from_numpy(x))
    if train:  # the layer above saw zeros: its output is an LSTM of a zero input
        with torch.no_grad():
            top = torch.nn.LSTM(H, H).double()
            top.load_state_dict({k[:-1] + "0": v for k, v in reference.state_dict().items()
                                 if k.endswith("l1")})  # fmt: skip
            alone, _ = top(torch.zeros(T, B, H, dtype=torch.float64))
        np.testing.assert_allclose(expected.numpy(), alone.numpy(), rtol=0, atol=1e-12)
    with jax.enable_x64(True):
        params = from_torch(reference)
        xj = jnp.asarray(x)
        if api == "linen":
            module = jaxrnn.linen.LSTM(H, num_layers=2, dropout=1.0, param_dtype=jnp.float64)
            y, (h, c) = module.apply({"params": params}, xj, deterministic=not train,
                                     rngs={"dropout": jax.random.key(1)})  # fmt: skip
        else:
            module = jaxrnn.nnx.LSTM(I, H, 2, dropout=1.0, param_dtype=jnp.float64,
                                     rngs=nnx.Rngs(0))  # fmt: skip
            module.load_state_dict(params)
            if train:
                module.train()
            else:
                module.eval()
            y, (h, c) = module(xj)
    np.testing.assert_allclose(np.asarray(y), expected.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(h), h_n.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(c), c_n.numpy(), rtol=0, atol=1e-12)


def test_nnx_dropout_switched_on_after_construction_behaves_like_torch():
    reference = torch_lstm_dropout_one()
    reference.dropout = 0.0
    with jax.enable_x64(True):
        module = jaxrnn.nnx.LSTM(I, H, 2, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
        module.load_state_dict(from_torch(reference))
        module.train()
        # as torch allows: change the rate on the built module, then run in training
        reference.dropout = 1.0
        module.dropout = 1.0
        x = x64_input()
        y, _ = module(jnp.asarray(x))
    reference.train()
    with torch.no_grad():
        expected, _ = reference(torch.from_numpy(x))
    np.testing.assert_allclose(np.asarray(y), expected.numpy(), rtol=0, atol=1e-12)


# Call-time checks found by docs/bad_input_table.py.


def test_functional_rejects_a_non_bool_batch_first_like_the_constructors():
    params = jaxrnn.params.init_params(jax.random.key(0), jaxrnn.params.Layout("lstm", I, H))
    with pytest.raises(TypeError, match="batch_first should be of type bool, got: str"):
        jaxrnn.lstm(params, jnp.ones((B, T, I)), batch_first="False")


@pytest.mark.parametrize("api", ["linen", "nnx", "functional"])
def test_complex_hx_to_a_real_family_is_rejected_as_torch_does(api):
    """torch fails in its matmul (RuntimeError); jaxrnn names the dtype (TypeError, as for
    an integer hx)."""
    hx = jnp.zeros((1, B, H), jnp.complex64)
    with pytest.raises(RuntimeError) as torch_error:
        torch.nn.GRU(I, H)(torch.ones(T, B, I), torch.zeros(1, B, H, dtype=torch.complex64))
    assert "dtype" in str(torch_error.value)
    with pytest.raises(TypeError, match="hx must be a real floating-point array"):
        if api == "linen":
            module = jaxrnn.linen.GRU(H)
            module.apply(module.init(jax.random.key(0), X), X, hx)
        elif api == "nnx":
            jaxrnn.nnx.GRU(I, H, rngs=nnx.Rngs(0))(X, hx)
        else:
            params = jaxrnn.params.init_params(jax.random.key(0), jaxrnn.params.Layout("gru", I, H))
            jaxrnn.gru(params, X, hx)


def test_complex_hx_still_reaches_the_lru():
    module = jaxrnn.nnx.LRU(I, H, rngs=nnx.Rngs(0))
    y, h_n = module(X, jnp.zeros((1, B, H), jnp.complex64))
    assert y.shape == (T, B, H) and jnp.iscomplexobj(h_n)


def test_linen_input_of_another_width_names_the_input_size():
    module = jaxrnn.linen.LSTM(H)
    variables = module.init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="input has feature size 3 but weight_ih_l0 expects"):
        module.apply(variables, jnp.ones((T, B, 3)))
