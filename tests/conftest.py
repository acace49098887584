"""Shared PyTorch references for the core tests, and a report of the worst errors measured.

Test modules import the helpers with ``from conftest import ...``. Every parity check
records its error through :func:`record`; the terminal summary prints the worst forward
error, the worst gradient error and how many cases each covers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import defaultdict

# On a GPU, JAX takes 75% of its memory at the first computation; with pytest-xdist's
# workers (and the tests that start a subprocess) each would try to, and all but the first
# fail. Taking memory as needed costs these small tests nothing. Set before any computation.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn

try:
    import torch

    torch.set_num_threads(1)  # the CI box has 2 cores; XLA wants one of them
except ImportError:  # the tests that need torch skip themselves
    torch = None

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru")

_ERRORS: dict[str, list[tuple[float, str]]] = defaultdict(list)


ON_CPU = jax.default_backend() == "cpu"
"""Whether the tests run on the CPU; the oneDNN plugin runs there only."""


def onednn_runs() -> bool:
    """Whether the jaxrnn_onednn kernel is registered and can run here (the CPU only)."""
    return ON_CPU and "onednn" in jaxrnn.kernels.names()


@contextlib.contextmanager
def full_float32():
    """Float32 matmuls and convolutions at full precision, in JAX and in torch, inside the block.

    On NVIDIA GPUs from Ampere on, XLA (and torch's cuDNN) run float32 matmuls as TF32 by
    default: inputs rounded to a 10-bit mantissa (unit roundoff 2^-11, about 4.9e-4), so a
    length-7 recurrence of width 6 already drifts ~1e-3 from torch on the CPU, a hundred times
    the 1e-5 that float32 parity checks allow. A test that compares with torch, float64 or
    finite differences in float32 means float32, so it asks for it here, not through a
    global flag. jit caches key on this setting, so nothing compiled at TF32 is reused.
    Changes nothing on the CPU, where float32 is always full.
    """
    saved = None
    if torch is not None:
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    try:
        with jax.default_matmul_precision("highest"):
            yield
    finally:
        if saved is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture
def float32_matmuls():
    """:func:`full_float32` around one test; modules that compare with an independent
    reference in float32 use it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    with full_float32():
        yield


def record(kind: str, error: float, case: str) -> None:
    """Note one measured error (``kind`` is "forward" or "gradient") for the summary."""
    _ERRORS[kind].append((float(error), case))


def pytest_configure(config):
    # torch's own notice that oneDNN has no projected LSTM; it falls back to its reference path
    config.addinivalue_line("filterwarnings", "ignore:LSTM with projections:UserWarning")


@pytest.fixture(autouse=True, scope="session")
def _no_user_wisdom(tmp_path_factory):
    """Run the suite on the built-in rules: a wisdom table in the user's cache (``python -m
    jaxrnn.tune``) would change which kernel ``backend="auto"`` takes in the tests."""
    saved = {k: os.environ.get(k) for k in ("JAXRNN_WISDOM", "JAXRNN_AUTOTUNE")}
    os.environ["JAXRNN_WISDOM"] = str(tmp_path_factory.mktemp("wisdom") / "none.json")
    os.environ.pop("JAXRNN_AUTOTUNE", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop every compiled executable after each test module.

    Each XLA:CPU executable keeps its JIT-compiled code in its own memory mappings, and jit
    caches (ours are keyed by static cells and options) keep every executable alive. Over the
    whole suite that passed Linux's ``vm.max_map_count`` (65530) and LLVM segfaulted inside
    ``backend_compile_and_load``; clearing per module keeps a run far below it.
    """
    yield
    _MAPPINGS.append(_count_mappings())
    jax.clear_caches()


_MAPPINGS: list[int] = []


def _count_mappings() -> int:
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux
        return 0


def pytest_sessionfinish(session):
    # under pytest-xdist each worker hands its measurements to the controller, which prints
    # the summary (workeroutput exists on workers only)
    out = getattr(session.config, "workeroutput", None)
    if out is not None:
        out["jaxrnn_errors"] = dict(_ERRORS)
        out["jaxrnn_mappings"] = _MAPPINGS


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: fine without the plugin
def pytest_testnodedown(node, error):
    # pytest-xdist's controller-side hook (the plugin registers its spec): a worker finished
    out = getattr(node, "workeroutput", {})
    for kind, errors in out.get("jaxrnn_errors", {}).items():
        _ERRORS[kind].extend((float(e), c) for e, c in errors)
    _MAPPINGS.extend(out.get("jaxrnn_mappings", []))


def pytest_terminal_summary(terminalreporter):
    if _MAPPINGS:
        terminalreporter.write_line(
            f"most memory mappings at the end of a test module: {max(_MAPPINGS)}"
            " (Linux's vm.max_map_count is usually 65530)"
        )
    for kind, errors in sorted(_ERRORS.items()):
        worst, case = max(errors)
        terminalreporter.write_line(
            f"jaxrnn {kind} parity vs torch: {len(errors)} checks, worst error {worst:.3g} ({case})"
        )


@dataclasses.dataclass(frozen=True)
class Config:
    """One layer configuration, named as ``torch.nn``'s constructor arguments."""

    kind: str
    input_size: int = 5
    hidden_size: int = 6
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    bidirectional: bool = False
    proj_size: int = 0

    @property
    def is_lstm(self) -> bool:
        return self.kind.startswith("lstm")

    @property
    def out_size(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def num_states(self) -> int:
        return self.num_layers * (2 if self.bidirectional else 1)


def config(kind: str, proj: int = 3, **kwargs) -> Config:
    """A :class:`Config` for one of :data:`KINDS`; ``lstm_proj`` gets ``proj_size=proj``."""
    return Config(kind, proj_size=proj if kind == "lstm_proj" else 0, **kwargs)


def torch_module(cfg: Config, seed: int = 0, dtype=None):
    torch.manual_seed(seed)
    common = dict(
        num_layers=cfg.num_layers,
        bias=cfg.bias,
        batch_first=cfg.batch_first,
        bidirectional=cfg.bidirectional,
    )
    if cfg.kind.startswith("rnn"):
        m = torch.nn.RNN(cfg.input_size, cfg.hidden_size, nonlinearity=cfg.kind[4:], **common)
    elif cfg.is_lstm:
        m = torch.nn.LSTM(cfg.input_size, cfg.hidden_size, proj_size=cfg.proj_size, **common)
    else:
        m = torch.nn.GRU(cfg.input_size, cfg.hidden_size, **common)
    return m if dtype is None else m.to(dtype)


def random_data(
    cfg: Config,
    rng: np.random.Generator,
    *,
    steps: int = 7,
    batch: int = 4,
    with_state: bool = True,
    with_lengths: bool = False,
    dtype=np.float32,
):
    """Numpy ``x``, ``hx`` (``None``, an array, or ``(h, c)`` for an LSTM) and ``lengths``."""
    shape = (batch, steps) if cfg.batch_first else (steps, batch)
    x = rng.standard_normal((*shape, cfg.input_size)).astype(dtype)
    hx = None
    if with_state:
        h = rng.standard_normal((cfg.num_states, batch, cfg.out_size)).astype(dtype)
        c = rng.standard_normal((cfg.num_states, batch, cfg.hidden_size)).astype(dtype)
        hx = (h, c) if cfg.is_lstm else h
    lengths = rng.integers(1, steps + 1, size=batch) if with_lengths else None
    return x, hx, lengths


def torch_run(m, cfg: Config, x, hx, lengths):
    """``m(x, hx)`` with lengths as ``pack_padded_sequence(..., enforce_sorted=False)``.

    Takes and returns torch tensors; the output is padded back to ``x``'s length.
    """
    if lengths is None:
        return m(x, hx)
    steps = x.shape[1] if cfg.batch_first else x.shape[0]
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.as_tensor(lengths), batch_first=cfg.batch_first, enforce_sorted=False
    )
    out, state = m(packed, hx)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(
        out, batch_first=cfg.batch_first, total_length=steps
    )
    return out, state


def torch_forward(m, cfg: Config, x, hx, lengths):
    """:func:`torch_run` on numpy data, returning numpy ``(out, h_n, c_n or None)``."""
    to_t = lambda a: None if a is None else torch.from_numpy(np.asarray(a))  # noqa: E731
    thx = None if hx is None else (tuple(map(to_t, hx)) if cfg.is_lstm else to_t(hx))
    with torch.no_grad():
        out, state = torch_run(m, cfg, to_t(x), thx, lengths)
    h, c = state if cfg.is_lstm else (state, None)
    return out.numpy(), h.numpy(), None if c is None else c.numpy()


def jax_fn(cfg: Config):
    """The :mod:`jaxrnn.functional` function for ``cfg`` with its fixed keyword arguments."""
    if cfg.kind.startswith("rnn"):
        return lambda *a, **k: jaxrnn.rnn(*a, nonlinearity=cfg.kind[4:], **k)
    return jaxrnn.lstm if cfg.is_lstm else jaxrnn.gru


def jax_forward(cfg: Config, params, x, hx, lengths, **kwargs):
    """The jaxrnn call matching :func:`torch_forward`: numpy-able ``(out, h_n, c_n or None)``."""
    jhx = None if hx is None else (tuple(map(jnp.asarray, hx)) if cfg.is_lstm else hx)
    lengths = None if lengths is None else jnp.asarray(lengths)
    out, state = jax_fn(cfg)(
        params, jnp.asarray(x), jhx, lengths=lengths, batch_first=cfg.batch_first, **kwargs
    )
    h, c = state if cfg.is_lstm else (state, None)
    return out, h, c


def max_abs_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0
