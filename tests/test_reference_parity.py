"""jaxrnn's RG-LRU, minGRU and minLSTM against their authors' code, on the same weights.

References: Google DeepMind's ``recurrentgemma`` 1.0.1 (the RG-LRU of Griffin, in PyTorch,
``recurrentgemma/torch/layers.py`` ``RGLRU``, and in JAX, ``recurrentgemma/jax/layers.py``
``RGLRU``) and ``mingru-pytorch`` 0.2.1 (``minGRU_pytorch/minGRU.py`` and ``minLSTM.py``,
Feng et al. 2024's log-space form with the ``g`` candidate). The paper's linear candidate, which
mingru-pytorch does not offer, is checked against the paper's §3.1/§3.2 equations written here
in float64 torch.

The weight mapping, written once (:func:`rglru_weights`, :func:`mingru_weights`):

* RG-LRU: recurrentgemma's ``a_gate`` and ``input_gate`` are ``BlockDiagonalLinear`` layers,
  ``w (heads, H/heads, H/heads)``, ``y = x_block @ w[h] + b[h]``; jaxrnn's dense
  ``weight_ih (2H, H)`` holds ``[r; i]``, so ``weight_ih[:H]`` is the block-diagonal matrix of
  ``a_gate.w[h].T`` and ``weight_ih[H:]`` that of ``input_gate.w[h].T``; the biases are the
  flattened ``b``; ``a_param`` is the same parameter (``log a = -8 r softplus(a_param)``).
* minGRU: mingru-pytorch's ``to_hidden_and_gate`` (``(2H, I)``, no bias) is ``[h̃; z]``;
  jaxrnn's ``weight_ih`` is ``[z; h̃]`` (``bias=False``). minLSTM: ``to_hidden_and_f_i_gate``
  is ``[h̃; f; i]``, jaxrnn's ``[f; i; h̃]``.

Tolerances. jaxrnn runs in float32 and the torch references in float64 (recurrentgemma's torch
scan accumulates in float32 by default; the tests pass ``acc_dtype=float64``), so the error is
jaxrnn's own rounding. Per step a state entry goes through one matmul of ``K`` terms (at most
``K`` roundings, ``K = max(I, H)``), about ten elementwise operations and the two of the
recurrence; with ``|a_t| <= 1`` the recurrence does not amplify an earlier error, so over ``T``
steps the relative error is at most ``(K + 12) T eps32`` (:func:`bound`); a gradient runs the
chain twice (``2x``). Errors are relative to the largest reference entry of each array.
``jax.default_matmul_precision("highest")`` pins float32 matmuls (TF32 on GPUs would not meet
the bound). Measured: at most 3.5e-7 (RG-LRU, bound 2.4e-5 for outputs) and 2.1e-7 (minGRU,
minLSTM). Each comparison was shown to fail on a real error: the RG-LRU's segment start
normalised as before (all four RG-LRU comparisons fail), its gate constant ``c = 8`` changed to
``8.01`` (all three recurrentgemma comparisons fail), ``g(x) = x + 0.51`` for ``x >= 0`` (both
``g`` comparisons fail), minLSTM's ``f'`` computed from ``1.001 d`` (both minLSTM comparisons
fail), the plain ``√`` in place of the bounded one (the float32 and bfloat16 saturation tests
at -100 fail with NaN gradients).

recurrentgemma cannot be installed next to jaxrnn's pins, so its torch results are stored in
``tests/fixtures/`` by ``tests/fixtures/make_recurrentgemma_fixtures.py``; where it is
installed, the tests compute them afresh and check the fixtures against them. Its JAX twin is
compared only where it is installed.
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import record
from flax import nnx

import jaxrnn
import jaxrnn.linen
import jaxrnn.nnx
from jaxrnn import families
from jaxrnn.families import rglru
from jaxrnn.params import Layout, init_params

torch = pytest.importorskip("torch")
try:
    import recurrentgemma.torch.layers as rg_torch
except ImportError:  # its pins (numpy < 2.4, Python >= 3.11) clash with jaxrnn's: fixtures
    rg_torch = None
FIXTURES = Path(__file__).parent / "fixtures"
mingru_pt = pytest.importorskip("minGRU_pytorch.minGRU")
minlstm_pt = pytest.importorskip("minGRU_pytorch.minLSTM")

EPS32 = float(np.finfo(np.float32).eps)
KERNELS = ("scan", "sequential", "parallel")


def bound(width: int, steps: int, passes: int = 1) -> float:
    """The relative error bound of a float32 run against float64 (see the module doc)."""
    return passes * (width + 12) * steps * EPS32


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


@pytest.fixture(autouse=True)
def _highest_matmuls():
    with jax.default_matmul_precision("highest"):
        yield


# --- RG-LRU against recurrentgemma ---------------------------------------------------------

T, B, H, HEADS = 12, 3, 8, 2


def rglru_reference(seed: int) -> dict[str, np.ndarray]:
    """recurrentgemma-shaped RG-LRU weights (float64): a ring-initialised ``a_param``, random
    block-diagonal gates and biases (non-zero, so that they are exercised)."""
    rng = np.random.default_rng(seed)
    blk = H // HEADS
    a_param = np.asarray(rglru.init(jax.random.key(seed), H, H)["a_param"], np.float64)
    return {
        "a_param": a_param,
        "a_w": rng.standard_normal((HEADS, blk, blk)) / np.sqrt(blk),
        "a_b": 0.5 * rng.standard_normal((HEADS, blk)),
        "x_w": rng.standard_normal((HEADS, blk, blk)) / np.sqrt(blk),
        "x_b": 0.5 * rng.standard_normal((HEADS, blk)),
    }


def _block_diagonal(w: np.ndarray) -> np.ndarray:
    heads, blk, _ = w.shape
    out = np.zeros((heads * blk, heads * blk))
    for h in range(heads):
        out[h * blk : (h + 1) * blk, h * blk : (h + 1) * blk] = w[h].T
    return out


def rglru_weights(ref: dict[str, np.ndarray], suffix: str = "") -> dict[str, jax.Array]:
    """recurrentgemma's RG-LRU weights as jaxrnn's ``rglru`` parameters (layer 0)."""
    weight = np.concatenate([_block_diagonal(ref["a_w"]), _block_diagonal(ref["x_w"])])
    bias = np.concatenate([ref["a_b"].ravel(), ref["x_b"].ravel()])
    return {
        f"weight_ih_l0{suffix}": jnp.asarray(weight, jnp.float32),
        f"bias_ih_l0{suffix}": jnp.asarray(bias, jnp.float32),
        f"a_param_l0{suffix}": jnp.asarray(ref["a_param"], jnp.float32),
    }


def torch_rglru(ref: dict[str, np.ndarray]):
    assert rg_torch is not None
    m = rg_torch.RGLRU(width=H, num_heads=HEADS, dtype=torch.float64)
    with torch.no_grad():
        m.a_param.copy_(torch.tensor(ref["a_param"]))
        m.a_gate.w.copy_(torch.tensor(ref["a_w"]))
        m.a_gate.b.copy_(torch.tensor(ref["a_b"]))
        m.input_gate.w.copy_(torch.tensor(ref["x_w"]))
        m.input_gate.b.copy_(torch.tensor(ref["x_b"]))
    return m


@contextlib.contextmanager
def float64_scan():
    """recurrentgemma's torch scan accumulates in float32 by default; in float64 here."""
    assert rg_torch is not None
    scan = rg_torch.rnn_scan

    def scan64(x, a, reset, h0, acc_dtype=torch.float64):
        return scan(x, a, reset, h0, acc_dtype=torch.float64)

    rg_torch.rnn_scan = scan64
    try:
        yield
    finally:
        rg_torch.rnn_scan = scan


def segment_positions(resets: np.ndarray) -> np.ndarray:
    """recurrentgemma's ``segment_pos (T,)`` of one sequence: 0 at its start and every reset."""
    pos, out = 0, []
    for t, r in enumerate(resets):
        pos = 0 if (t == 0 or r) else pos + 1
        out.append(pos)
    return np.asarray(out)


def run_reference(m, x: np.ndarray, pos: np.ndarray):
    """One sequence ``x (T, H)`` through recurrentgemma's torch RG-LRU: ``(y (T, H), h)``."""
    y, h = m(torch.as_tensor(x)[None], torch.as_tensor(pos)[None])
    return y[0], h[0]


def reference_layer(ms, x, resets, lengths):
    """What jaxrnn's (bidirectional) layer should give, sequence by sequence: forwards the
    valid steps with recurrentgemma's segment positions; backwards each segment of the valid
    steps reversed (it starts at the segment's last step, ``segment_pos = 0`` there)."""
    outs, finals = [], []
    for b in range(x.shape[1]):
        n = int(lengths[b])
        xb = torch.as_tensor(x[:n, b])
        y, h = run_reference(ms[0], xb, segment_positions(resets[:n, b]))
        ys, hs = [y], [h]
        if len(ms) == 2:
            starts = [0] + [t for t in range(1, n) if resets[t, b]] + [n]
            parts, h_rev = [], None
            for lo, hi in reversed(list(itertools.pairwise(starts))):
                yr, h_rev = run_reference(ms[1], xb[lo:hi].flip(0), np.arange(hi - lo))
                parts.insert(0, yr.flip(0))
            ys.append(torch.cat(parts))
            hs.append(h_rev)
        y = torch.cat(ys, dim=-1)
        outs.append(torch.cat([y, torch.zeros(x.shape[0] - n, y.shape[1], dtype=y.dtype)]))
        finals.append(torch.stack(hs))
    return torch.stack(outs, dim=1), torch.stack(finals, dim=1)


def rglru_case(bidirectional: bool):
    refs = [rglru_reference(0)] + ([rglru_reference(1)] if bidirectional else [])
    params = rglru_weights(refs[0])
    if bidirectional:
        params |= rglru_weights(refs[1], "_reverse")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, H))
    resets = np.zeros((T, B), bool)
    resets[[3, 7, 5, 9], [0, 0, 1, 2]] = True  # t = 9 of sequence 2 lies in its padding
    lengths = np.array([T, 9, 8])
    cot = rng.standard_normal((T, B, H * len(refs)))
    return refs, params, x, resets, lengths, cot


GATES = ("a_param", "a_w", "a_b", "x_w", "x_b")


def recurrentgemma_case(bidirectional: bool) -> dict[str, np.ndarray]:
    """One case's inputs, recurrentgemma's weights, and its torch RG-LRU's outputs, final
    states and gradients in float64 (what ``tests/fixtures/make_recurrentgemma_fixtures.py``
    stores)."""
    refs, _, x, resets, lengths, cot = rglru_case(bidirectional)
    ms = [torch_rglru(r) for r in refs]
    tx = torch.tensor(x, requires_grad=True)
    with float64_scan():
        want_y, want_h = reference_layer(ms, tx, resets, lengths)
        loss = (want_y * torch.as_tensor(cot)).sum()
        tparams = [p for m in ms for p in (m.a_param, m.a_gate.w, m.a_gate.b, m.input_gate.w,
                                           m.input_gate.b)]  # fmt: skip
        grads = torch.autograd.grad(loss, [tx, *tparams])
    case = {"x": x, "resets": resets, "lengths": lengths, "cot": cot}
    case |= {"y": want_y.detach().numpy(), "h_n": want_h.detach().numpy()}
    case["d_x"] = grads[0].numpy()
    for d, ref in enumerate(refs):
        for k, name in enumerate(GATES):
            case[f"{name}{d}"] = ref[name]
            case[f"d_{name}{d}"] = grads[1 + 5 * d + k].numpy()
    return case


def fixture_path(bidirectional: bool) -> Path:
    return FIXTURES / f"recurrentgemma_rglru_{'bidirectional' if bidirectional else 'forward'}.npz"


def recurrentgemma_results(bidirectional: bool) -> dict[str, np.ndarray]:
    """recurrentgemma's results: computed here if it is installed (and then the stored fixture
    must agree with them), else read from the fixture."""
    path = fixture_path(bidirectional)
    stored = dict(np.load(path)) if path.exists() else None
    if rg_torch is None:
        if stored is None:
            pytest.skip("recurrentgemma is not installed and its fixture is missing")
        return stored
    live = recurrentgemma_case(bidirectional)
    if stored is not None:  # the fixture is what this code computes (float64: 1e-12)
        for name, value in live.items():
            np.testing.assert_allclose(stored[name], value, rtol=1e-12, atol=1e-14, err_msg=name)
    return live


@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
def test_rglru_matches_recurrentgemma_with_resets_and_lengths(bidirectional):
    """Outputs, final states and gradients (parameters and input) against recurrentgemma's
    torch RG-LRU in float64, on every kernel: segment starts (first step, resets, the reverse
    direction's first step of each reversed segment) included."""
    case = recurrentgemma_results(bidirectional)
    directions = 2 if bidirectional else 1
    params: dict[str, jax.Array] = {}
    for d, suffix in enumerate(("", "_reverse")[:directions]):
        params |= rglru_weights({name: case[f"{name}{d}"] for name in GATES}, suffix)
    x, cot = case["x"], case["cot"]
    resets, lengths = jnp.asarray(case["resets"]), jnp.asarray(case["lengths"])
    blk = H // HEADS

    for backend in KERNELS:

        def f(p, xx, backend=backend):
            y, h = jaxrnn.layer("rglru", p, xx, resets=resets, lengths=lengths, backend=backend)
            return jnp.sum(y * cot), (y, h)

        (_, (y, h)), (dp, dx) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(
            params, jnp.asarray(x, jnp.float32)
        )
        errs = {"output": rel_err(y, case["y"]), "h_n": rel_err(h, case["h_n"])}
        errs["d_x"] = rel_err(dx, case["d_x"])
        for d, suffix in enumerate(("", "_reverse")[:directions]):
            w = np.asarray(dp[f"weight_ih_l0{suffix}"])
            bias = np.asarray(dp[f"bias_ih_l0{suffix}"])
            errs[f"d_a_param{suffix}"] = rel_err(dp[f"a_param_l0{suffix}"], case[f"d_a_param{d}"])
            for k, gate in enumerate(("a", "x")):
                for hd in range(HEADS):
                    rows = slice(k * H + hd * blk, k * H + (hd + 1) * blk)
                    cols = slice(hd * blk, (hd + 1) * blk)
                    want = case[f"d_{gate}_w{d}"][hd]
                    errs[f"d_{gate}_w{hd}{suffix}"] = rel_err(w[rows, cols].T, want)
                want = case[f"d_{gate}_b{d}"].reshape(-1)
                errs[f"d_{gate}_b{suffix}"] = rel_err(bias[k * H : (k + 1) * H], want)
        for name, err in errs.items():
            record("rglru vs recurrentgemma torch f64 (rel)", err, f"{backend} {name}")
            passes = 1 if name in ("output", "h_n") else 2
            assert err < bound(H, T, passes), (backend, name, err, bound(H, T, passes))


def test_rglru_matches_recurrentgemma_jax_in_float32():
    """Against recurrentgemma's own JAX (flax) RG-LRU, both in float32, with resets: outputs and
    parameter gradients. recurrentgemma forms ``1 - a²`` by subtraction, whose relative error
    is up to ``eps / (1 - a²)``: with ``a <= 0.999`` (the ring's edge, so ``1 - a² >= 0.002``)
    that adds ``eps / 0.002`` to the bound of two float32 runs."""
    rg_jax = pytest.importorskip("recurrentgemma.jax.layers")  # no fixture: live only
    ref = rglru_reference(0)
    params = rglru_weights(ref)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((T, B, H)).astype(np.float32)
    resets = np.zeros((T, B), bool)
    resets[[4, 6], [0, 2]] = True
    pos = np.stack([segment_positions(resets[:, b]) for b in range(B)])
    module = rg_jax.RGLRU(width=H, num_heads=HEADS)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    variables = {
        "params": {
            "a_param": f32(ref["a_param"]),
            "a_gate": {"w": f32(ref["a_w"]), "b": f32(ref["a_b"])},
            "input_gate": {"w": f32(ref["x_w"]), "b": f32(ref["x_b"])},
        }
    }
    cot = rng.standard_normal((T, B, H)).astype(np.float32)

    def theirs(v):
        y, _ = module.apply(v, jnp.swapaxes(x, 0, 1), jnp.asarray(pos))
        return jnp.sum(jnp.swapaxes(y, 0, 1) * cot), y

    (_, want), dv = jax.value_and_grad(theirs, has_aux=True)(variables)
    tol = 2 * bound(H, T) + EPS32 / (1 - 0.999**2)
    for backend in KERNELS:

        def ours(p, backend=backend):
            y, _ = jaxrnn.layer(
                "rglru", p, jnp.asarray(x), resets=jnp.asarray(resets), backend=backend
            )
            return jnp.sum(y * cot), y

        (_, got), dp = jax.value_and_grad(ours, has_aux=True)(params)
        errs = {
            "output": rel_err(got, jnp.swapaxes(want, 0, 1)),
            "d_a_param": rel_err(dp["a_param_l0"], dv["params"]["a_param"]),
            "d_bias_r": rel_err(dp["bias_ih_l0"][:H], dv["params"]["a_gate"]["b"].ravel()),
            "d_bias_i": rel_err(dp["bias_ih_l0"][H:], dv["params"]["input_gate"]["b"].ravel()),
        }
        for name, err in errs.items():
            record("rglru vs recurrentgemma jax f32 (rel)", err, f"{backend} {name}")
            assert err < 2 * tol if name.startswith("d_") else tol, (backend, name, err)


def test_rglru_segment_start_is_griffins_unnormalised_input():
    """Regression (issue 18): at a segment start (the first step, and a reset) ``a_t = 0`` and
    the input is not normalised, so ``h = i ⊙ u`` exactly, in every kernel, whatever came
    before; the old normalised start differed by 0.3-0.8 on that step."""
    params = init_params(jax.random.key(0), Layout("rglru", H, H))
    x = jax.random.normal(jax.random.key(1), (T, B, H))
    resets = np.zeros((T, B), bool)
    resets[5, 1] = True
    w, b = params["weight_ih_l0"], params["bias_ih_l0"]
    gate_i = jax.nn.sigmoid(x @ w[H:].T + b[H:])
    for backend in KERNELS:
        y, _ = jaxrnn.layer("rglru", params, x, resets=jnp.asarray(resets), backend=backend)
        np.testing.assert_allclose(y[0], gate_i[0] * x[0], rtol=4 * EPS32 * H, atol=0)
        np.testing.assert_allclose(y[5, 1], gate_i[5, 1] * x[5, 1], rtol=4 * EPS32 * H, atol=0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("pre", [-100.0, 100.0])
def test_rglru_gradients_stay_finite_when_the_gate_saturates(dtype, pre):
    """Regression (issue 18): a recurrence-gate pre-activation of -100 makes ``σ`` underflow and
    ``a_t = 1``, where ``√(1 - a²)`` has an infinite derivative; with the derivative bounded
    (as recurrentgemma's ``SqrtBoundDerivative``) every gradient is finite, in every kernel.
    +100 saturates the other way (``a_t = a``, the smallest)."""
    params = init_params(jax.random.key(0), Layout("rglru", H, H), dtype=dtype)
    params["bias_ih_l0"] = params["bias_ih_l0"].at[:H].set(pre).at[H:].set(pre)
    x = jax.random.normal(jax.random.key(1), (T, B, H), dtype)
    resets = np.zeros((T, B), bool)
    resets[6, 0] = True
    for backend in KERNELS:

        def loss(p, xx, backend=backend):
            y, h = jaxrnn.layer("rglru", p, xx, resets=jnp.asarray(resets), backend=backend)
            return jnp.sum(y.astype(jnp.float32)) + jnp.sum(h.astype(jnp.float32))

        grads = jax.grad(loss, argnums=(0, 1))(params, x)
        for leaf in jax.tree.leaves(grads):
            assert bool(jnp.all(jnp.isfinite(leaf))), (backend, pre)


@pytest.mark.parametrize("nu_log", [-100.0, 100.0])
def test_lru_gradients_stay_finite_at_extreme_eigenvalue_parameters(nu_log):
    """Regression (issue 18): ``ν^log = 100`` overflowed ``exp`` and made its gradient NaN
    (``inf * 0``); -100 puts ``|λ|`` at 1. float32 only: the LRU's complex state has no
    bfloat16 form."""
    params = init_params(jax.random.key(0), Layout("lru", 4, 4))
    params["nu_log_l0"] = jnp.full_like(params["nu_log_l0"], nu_log)
    x = jax.random.normal(jax.random.key(1), (6, 2, 4))
    for backend in KERNELS:

        def loss(p, backend=backend):
            return jnp.sum(jaxrnn.layer("lru", p, x, backend=backend)[0])

        for name, g in jax.grad(loss)(params).items():
            assert bool(jnp.all(jnp.isfinite(g))), (backend, name)


def test_sqrt_bounded_derivative_caps_the_slope_and_keeps_the_value():
    x = jnp.array([0.0, 1e-12, 1e-4, 0.25, 1.0])
    np.testing.assert_array_equal(rglru.sqrt_bounded_derivative(x, 1000.0), jnp.sqrt(x))
    slope = jax.vmap(jax.grad(lambda v: rglru.sqrt_bounded_derivative(v, 1000.0)))(x)
    # below 1 / (4 * 1000²) the slope is the cap; above it, 1 / (2 √x)
    np.testing.assert_allclose(slope, [1000.0, 1000.0, 50.0, 1.0, 0.5], rtol=4 * EPS32)


# --- minGRU / minLSTM against mingru-pytorch -------------------------------------------------

IM, HM, TM = 5, 6, 10


def mingru_weights(w: np.ndarray, family: str) -> dict[str, jax.Array]:
    """mingru-pytorch's fused projection (``[h̃; z]`` or ``[h̃; f; i]``) as jaxrnn's
    ``weight_ih`` (``[z; h̃]`` or ``[f; i; h̃]``)."""
    blocks = np.split(w, 2 if family == "mingru" else 3)
    return {"weight_ih_l0": jnp.asarray(np.concatenate(blocks[1:] + blocks[:1]), jnp.float32)}


@pytest.mark.parametrize("family", ["mingru", "minlstm"])
def test_min_rnn_g_candidate_matches_mingru_pytorch(family):
    """``candidate="g"`` against mingru-pytorch's log-space parallel scan (float64) from the
    zero state, and against its sequential mode (one step at a time from a positive state):
    outputs and gradients of the weights and the input, every kernel."""
    torch.manual_seed(0)
    cls = mingru_pt.minGRU if family == "mingru" else minlstm_pt.minLSTM
    m = cls(IM, expansion_factor=HM / IM, proj_out=False).double()
    (w_t,) = [p for p in m.parameters() if p.ndim == 2 and p.shape[1] == IM]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((TM, 2, IM))
    cot = rng.standard_normal((TM, 2, HM))
    tx = torch.tensor(np.swapaxes(x, 0, 1), requires_grad=True)
    want = m(tx)
    (want_dx, want_dw) = torch.autograd.grad(
        (want * torch.as_tensor(np.swapaxes(cot, 0, 1))).sum(), [tx, w_t]
    )
    want = np.swapaxes(want.detach().numpy(), 0, 1)
    want_dx = np.swapaxes(want_dx.numpy(), 0, 1)
    params = mingru_weights(w_t.detach().numpy(), family)
    spec = families.get(family).with_options(candidate="g")
    for backend in KERNELS:

        def f(p, xx, backend=backend):
            y, _ = jaxrnn.layer(spec, p, xx, backend=backend)
            return jnp.sum(y * cot), y

        (_, got), (dp, dx) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(
            params, jnp.asarray(x, jnp.float32)
        )
        errs = {
            "output": rel_err(got, want),
            "d_x": rel_err(dx, want_dx),
            "d_weight": rel_err(
                mingru_weights(np.asarray(want_dw), family)["weight_ih_l0"], dp["weight_ih_l0"]
            ),
        }
        for name, err in errs.items():
            record(f"{family} g vs mingru-pytorch f64 (rel)", err, f"{backend} {name}")
            assert err < bound(IM, TM, 1 if name == "output" else 2), (backend, name, err)

    # sequential mode: mingru-pytorch's seq_len == 1 path from a positive previous state
    h0 = np.abs(rng.standard_normal((2, HM))) + 0.1
    prev, steps = torch.as_tensor(h0)[:, None], []
    for t in range(3):
        prev = m(torch.as_tensor(x[t])[:, None], prev)
        steps.append(prev[:, 0].detach().numpy())
    state = jnp.asarray(h0, jnp.float32)[None]
    for t in range(3):
        y, state = jaxrnn.step(spec, params, jnp.asarray(x[t], jnp.float32), state)
        err = rel_err(y, steps[t])
        record(f"{family} g step vs mingru-pytorch f64 (rel)", err, f"t={t}")
        assert err < bound(IM, t + 1), (t, err)


@pytest.mark.parametrize("family", ["mingru", "minlstm"])
def test_min_rnn_linear_candidate_matches_the_papers_equations(family):
    """``candidate="linear"`` (which mingru-pytorch does not offer) against Feng et al. 2024's
    §3.1 / §3.2 equations, written here sequentially in float64 torch."""
    rng = np.random.default_rng(5)
    gates = 2 if family == "mingru" else 3
    w = rng.standard_normal((gates * HM, IM)) / np.sqrt(IM)
    b = rng.standard_normal(gates * HM) * 0.3
    x = rng.standard_normal((TM, 2, IM))
    h = torch.zeros(2, HM, dtype=torch.float64)
    want = []
    for t in range(TM):
        pre = torch.as_tensor(x[t]) @ torch.as_tensor(w).T + torch.as_tensor(b)
        if family == "mingru":
            z, cand = torch.sigmoid(pre[:, :HM]), pre[:, HM:]
            h = (1 - z) * h + z * cand
        else:
            f, i, cand = (
                torch.sigmoid(pre[:, :HM]),
                torch.sigmoid(pre[:, HM : 2 * HM]),
                pre[:, 2 * HM :],
            )
            h = f / (f + i) * h + i / (f + i) * cand
        want.append(h.numpy())
    params = {
        "weight_ih_l0": jnp.asarray(w, jnp.float32),
        "bias_ih_l0": jnp.asarray(b, jnp.float32),
    }
    for backend in KERNELS:
        y, _ = jaxrnn.layer(family, params, jnp.asarray(x, jnp.float32), backend=backend)
        err = rel_err(y, np.stack(want))
        record(f"{family} linear vs paper f64 (rel)", err, backend)
        assert err < bound(IM, TM), (backend, err)


# --- options: declared, checked, reachable ---------------------------------------------------


@pytest.mark.parametrize("family", ["mingru", "minlstm"])
def test_candidate_g_reaches_every_entry_point(family):
    """Regression (issue 18): ``candidate="g"`` given to Layout, linen, nnx, the functional
    wrapper or a family value gives the same (g) numbers, different from the linear ones."""
    layout = Layout(family, 3, 4, options=(("candidate", "g"),))
    params = init_params(jax.random.key(0), layout)
    x = jax.random.normal(jax.random.key(1), (5, 2, 3))
    want, _ = jaxrnn.layer(families.get(family).with_options(candidate="g"), params, x)
    linear, _ = jaxrnn.layer(family, params, x)
    assert float(jnp.max(jnp.abs(want - linear))) > 0.1
    cls_name = {"mingru": "MinGRU", "minlstm": "MinLSTM"}[family]
    got = {
        "layout.spec": jaxrnn.layer(layout.spec, params, x)[0],
        "functional": getattr(jaxrnn, family)(params, x, candidate="g")[0],
        "linen": getattr(jaxrnn.linen, cls_name)(4, options=(("candidate", "g"),)).apply(
            {"params": params}, x
        )[0],
    }
    module = getattr(jaxrnn.nnx, cls_name)(3, 4, options={"candidate": "g"}, rngs=nnx.Rngs(0))
    module.load_state_dict(params)
    got["nnx"] = module(x)[0]
    for where, y in got.items():
        np.testing.assert_array_equal(y, want, err_msg=where)


def test_unknown_options_are_errors_that_list_the_allowed_ones():
    x = jnp.ones((5, 2, 3))
    bad_value = (("candidate", "G"),)
    bad_name = (("candidates", "g"),)
    with pytest.raises(ValueError, match=r"must be one of \('linear', 'g'\), got 'G'"):
        Layout("mingru", 3, 4, options=bad_value)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['candidates'\].*candidate"):
        Layout("mingru", 3, 4, options=bad_name)
    with pytest.raises(ValueError, match="unknown option"):
        Layout("gru", 3, 4, options=(("candidate", "g"),))
    with pytest.raises(ValueError, match="must be one of"):
        jaxrnn.linen.MinGRU(4, options=bad_value).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="unknown option"):
        jaxrnn.linen.LRU(4, options=bad_name).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="must be one of"):
        jaxrnn.nnx.MinLSTM(3, 4, options=dict(bad_value), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="must be one of"):
        families.get("mingru").with_options(candidate="log")
    with pytest.raises(ValueError, match="must be one of"):
        jaxrnn.mingru(init_params(jax.random.key(0), Layout("mingru", 3, 4)), x, candidate="h")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="options must be"):
        Layout("mingru", 3, 4, options=3)  # type: ignore[arg-type]
