"""bfloat16 and float16 values (not only dtypes): jaxrnn against float64 torch.

Parameters, input and initial state are rounded to the low-precision dtype; the reference is
``torch.nn`` in float64 on exactly those rounded values, so the difference is jaxrnn's own
rounding. Stated tolerance: ``4 * eps * max(1, max|ref|)`` per array, eps = 2^-8 (bf16) and
2^-11 (fp16), i.e. 1.6e-2 and 2.0e-3 at unit scale. Measured (2 layers, bidirectional,
T = 16, packed unsorted lengths, initial state), as ``|err| / max(1, max|ref|)``:
bf16 worst 5.8e-3 (rnn_relu output), fp16 worst 9.8e-4 (rnn_tanh output). torch's own
bf16/fp16 CPU kernels on the same values err by as much (outputs: bf16 1.4e-3..3.2e-2,
fp16 1.9e-4..2.7e-3 absolute); the test also asserts jaxrnn is within 3x of them plus eps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import KINDS, config, jax_forward, random_data, record, torch_module, torch_run

import jaxrnn
from jaxrnn.interop import from_torch
from jaxrnn.params import Layout, init_params

torch = pytest.importorskip("torch")

# Not pinned to full float32 (float32_matmuls): the operands are bf16/fp16 values, which TF32
# (a GPU's float32 default) does not touch, and the tolerance is the dtype's own eps.

EPS = {"bfloat16": 2.0**-8, "float16": 2.0**-11}


def _f64(a) -> np.ndarray:
    return np.asarray(jnp.asarray(a).astype(jnp.float32), np.float64)


def _torch(cfg, params, x, hx, lengths, dtype):
    """torch's outputs in ``dtype`` on the given (already rounded) values, as float64."""
    m = torch_module(cfg).to(dtype)
    m.load_state_dict({k: torch.from_numpy(_f64(v)).to(dtype) for k, v in params.items()})
    t = lambda a: torch.from_numpy(_f64(a)).to(dtype)  # noqa: E731
    thx = None if hx is None else (tuple(map(t, hx)) if cfg.is_lstm else t(hx))
    with torch.no_grad():
        out, state = torch_run(m, cfg, t(x), thx, lengths)
    h, c = state if cfg.is_lstm else (state, None)
    return [None if a is None else a.double().numpy() for a in (out, h, c)]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("kind", KINDS)
def test_low_precision_values_within_stated_tolerance_of_float64_torch(kind, dtype):
    cfg = config(kind, num_layers=2, bidirectional=True)
    x, hx, lengths = random_data(cfg, np.random.default_rng(0), with_lengths=True, steps=16)
    jd = jnp.dtype(dtype)
    params = {k: v.astype(jd) for k, v in from_torch(torch_module(cfg)).items()}
    x = jnp.asarray(x).astype(jd)
    hx = tuple(jnp.asarray(h).astype(jd) for h in hx) if cfg.is_lstm else jnp.asarray(hx, jd)

    got = jax_forward(cfg, params, x, hx, lengths)
    want = _torch(cfg, params, x, hx, lengths, torch.float64)
    theirs = _torch(cfg, params, x, hx, lengths, getattr(torch, dtype))
    for name, g, w, t in zip(("output", "h_n", "c_n"), got, want, theirs, strict=True):
        if w is None:
            continue
        assert g.dtype == jd, (name, g.dtype)  # no silent upcast
        err = float(np.max(np.abs(_f64(g) - w)))
        scale = max(1.0, float(np.max(np.abs(w))))
        record(f"{dtype} vs float64 torch (relative)", err / scale, f"{kind} {name}")
        assert err <= 4 * EPS[dtype] * scale, (name, err, scale)
        torch_err = float(np.max(np.abs(t - w)))
        assert err <= 3 * torch_err + EPS[dtype] * scale, (name, err, torch_err)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_lru_with_low_precision_parameters_runs_complex64_within_tolerance(dtype):
    """The LRU's complex state is complex64 under bf16/fp16 parameters (``lax.complex`` takes
    float32 and float64 only), its output takes the parameters' dtype, and it equals the
    float64 computation on the same rounded values within the stated ``4 eps`` (the bf16
    input projection and gamma product, and the output's final rounding: ~2 eps). The
    equations themselves are checked against the paper in ``test_parallel_families.py``."""
    jd = jnp.dtype(dtype)
    layout = Layout("lru", 3, 8, num_layers=2, bidirectional=True)
    params = {k: v.astype(jd) for k, v in init_params(jax.random.key(0), layout).items()}
    x = jax.random.normal(jax.random.key(1), (16, 4, 3)).astype(jd)
    lengths = jnp.array([16, 9, 1, 12])
    for backend in ("sequential", "parallel", "scan"):
        y, h = jaxrnn.layer("lru", params, x, lengths=lengths, backend=backend)
        assert y.dtype == jd and h.dtype == jnp.complex64, backend
        with jax.enable_x64(True):
            wide = {k: v.astype(jnp.float64) for k, v in params.items()}
            want = np.asarray(jaxrnn.layer("lru", wide, x.astype(jnp.float64), lengths=lengths)[0])
        bound = 4 * EPS[dtype] * max(1.0, float(np.max(np.abs(want))))
        assert float(np.max(np.abs(_f64(y) - want))) <= bound, backend
