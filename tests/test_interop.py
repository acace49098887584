"""Weights move between PyTorch and jaxrnn exactly, and jaxrnn imports without torch."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import KINDS, config, jax_forward, random_data, torch_forward, torch_module

import jaxrnn.linen
from jaxrnn.interop import from_torch, to_torch
from jaxrnn.params import Layout, init_params

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

torch = pytest.importorskip("torch")

CONFIGS = [
    config(kind, num_layers=2, bidirectional=bidir, bias=bias)
    for kind in KINDS
    for bidir, bias in [(False, True), (True, False)]
]
IDS = [f"{c.kind}-{'bidir' if c.bidirectional else 'uni'}-{'bias' if c.bias else 'nobias'}"
       for c in CONFIGS]  # fmt: skip


def fresh_torch(cfg, seed, dtype=None):
    """A second module of the same configuration, with different weights."""
    return torch_module(cfg, seed=seed + 1, dtype=dtype)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_round_trip_is_exact_and_loads_strictly(cfg, dtype):
    m = torch_module(cfg, dtype=dtype)
    params = from_torch(m)
    assert list(params) == list(m.state_dict())
    for name, p in params.items():
        assert p.dtype == jnp.dtype(str(dtype).removeprefix("torch."))
        np.testing.assert_array_equal(
            np.asarray(p, np.float32), m.state_dict()[name].float().numpy()
        )

    back = to_torch(params)
    assert list(back) == list(m.state_dict())
    for name, t in m.state_dict().items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t), name

    other = fresh_torch(cfg, 0, dtype)
    other.load_state_dict(back, strict=True)
    for name, t in m.state_dict().items():
        assert torch.equal(other.state_dict()[name], t), name


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # NaNs
def test_bfloat16_round_trip_is_bitwise_over_the_whole_range():
    """Every bfloat16 bit pattern survives, extremes, subnormals and infinities included
    (float16 on the way, say, would lose the range); NaNs stay NaN (payloads may not)."""
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    values = bits.view(torch.bfloat16)
    back = to_torch(from_torch({"weight_ih_l0": values}))["weight_ih_l0"]
    assert back.dtype == torch.bfloat16
    nan = torch.isnan(values)
    assert torch.equal(torch.isnan(back), nan)
    assert torch.equal(back[~nan].view(torch.int16), bits[~nan])


def test_state_dict_and_module_give_the_same_params():
    m = torch_module(config("lstm_proj", num_layers=2, bidirectional=True))
    a, b = from_torch(m), from_torch(m.state_dict())
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_jaxrnn_initialized_params_run_in_torch(cfg):
    """Params made by jaxrnn load strictly into torch and compute the same function there."""
    layout = Layout(
        cfg.kind.removesuffix("_proj"),
        cfg.input_size, cfg.hidden_size, cfg.num_layers, cfg.bias, cfg.bidirectional,
        cfg.proj_size,
    )  # fmt: skip
    params = init_params(jax.random.key(3), layout)
    m = fresh_torch(cfg, 0)
    m.load_state_dict(to_torch(params), strict=True)
    x, hx, lengths = random_data(cfg, np.random.default_rng(0), with_lengths=True)
    for got, want in zip(
        jax_forward(cfg, params, x, hx, lengths), torch_forward(m, cfg, x, hx, lengths), strict=True
    ):
        if want is not None:
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_linen_params_load_strictly_into_torch():
    model = jaxrnn.linen.LSTM(hidden_size=6, num_layers=2, bidirectional=True, proj_size=3)
    variables = model.init(jax.random.key(0), jnp.zeros((7, 2, 5)))
    m = torch_module(config("lstm_proj", num_layers=2, bidirectional=True))
    m.load_state_dict(to_torch(variables["params"]), strict=True)


def test_float64_without_x64_warns_and_narrows():
    m = torch_module(config("gru"), dtype=torch.float64)
    with pytest.warns(
        UserWarning, match=r"4 float64 tensors \(e.g. 'weight_ih_l0'\) became float32"
    ):
        params = from_torch(m)
    assert all(p.dtype == jnp.float32 for p in params.values())


def test_float64_round_trip_under_x64():
    m = torch_module(config("gru", num_layers=2), dtype=torch.float64)
    with jax.enable_x64(True):
        params = from_torch(m)
        assert all(p.dtype == jnp.float64 for p in params.values())
        back = to_torch(params)
    for name, t in m.state_dict().items():
        assert back[name].dtype == torch.float64 and torch.equal(back[name], t), name


def test_conversion_errors_name_the_problem():
    with pytest.raises(TypeError, match=r"torch\.nn\.Module or a state_dict mapping, got list"):
        from_torch([1, 2])
    with pytest.raises(TypeError, match=r"state_dict\['weight_ih_l0'\] is a ndarray"):
        from_torch({"weight_ih_l0": np.zeros((3, 2))})
    with pytest.raises(TypeError, match="to_torch expects a mapping of names to arrays, got"):
        to_torch(jnp.zeros(3))


def test_import_without_torch():
    """``import jaxrnn`` and every non-interop feature work when torch cannot be imported."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import jax, jax.numpy as jnp
        import jaxrnn, jaxrnn.linen, jaxrnn.nnx, jaxrnn.interop
        from flax import nnx
        x = jnp.ones((3, 2, 4))
        out, (h, c) = jaxrnn.nnx.LSTM(4, 5, rngs=nnx.Rngs(0))(x)
        assert out.shape == (3, 2, 5), out.shape
        try:
            jaxrnn.interop.from_torch({})
        except ImportError:
            print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
