"""Linear-recurrence families (minGRU, minLSTM, LRU, RG-LRU) and the parallel kernel.

The reference is a float64 loop written here from each paper's equations, one step at a time,
one sequence at a time, every segment of a reset batch run separately from the initial state.
``coefficients`` + :func:`linear_recurrence` + ``readout`` must equal it within 1e-5 in
float32, for both methods, forwards and backwards in time, with lengths and resets; gradients
must equal ``jax.grad`` of the float64 reference within ``1e-5 * max(1, max|ref|)``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn.families import lru, mingru, minlstm, rglru
from jaxrnn.kernels.parallel import METHODS, _linear_recurrence, linear_recurrence

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

TOL = 1e-5
T, B = 7, 3


# ---------------------------------------------------------------- float64 reference, per paper


def sigmoid(x):
    return 1 / (1 + jnp.exp(-x))


def g(x):  # Feng et al. 2024, log-space appendix
    return jnp.where(x >= 0, x + 0.5, sigmoid(x))


def mingru_step(p, h, x, candidate="linear"):  # Feng et al. 2024, §3.1
    w, bias = p["weight_ih"], p.get("bias_ih", 0.0)
    pre = w @ x + bias
    H = h.shape[0]
    z = sigmoid(pre[:H])
    h_tilde = g(pre[H:]) if candidate == "g" else pre[H:]
    h = (1 - z) * h + z * h_tilde
    return h, h


def minlstm_step(p, h, x, candidate="linear"):  # Feng et al. 2024, §3.2
    pre = p["weight_ih"] @ x + p.get("bias_ih", 0.0)
    H = h.shape[0]
    f, i = sigmoid(pre[:H]), sigmoid(pre[H : 2 * H])
    f_norm, i_norm = f / (f + i), i / (f + i)
    h_tilde = g(pre[2 * H :]) if candidate == "g" else pre[2 * H :]
    h = f_norm * h + i_norm * h_tilde
    return h, h


def lru_step(p, h, x):  # Orvieto et al. 2023, §3.3-3.4
    lam = jnp.exp(-jnp.exp(p["nu_log"]) + 1j * jnp.exp(p["theta_log"]))
    B_ = p["B_re"] + 1j * p["B_im"]
    C_ = p["C_re"] + 1j * p["C_im"]
    h = lam * h + jnp.exp(p["gamma_log"]) * (B_ @ x)
    skip = p["D"] * x if p["D"].ndim == 1 else p["D"] @ x
    return h, jnp.real(C_ @ h) + skip


def rglru_step(p, h, x, c=8.0):  # De et al. 2024, §2.4 eqs. 1-4, a = σ(Λ), Λ = -a_param
    u = p["weight_in"] @ x + p.get("bias_in", 0.0) if "weight_in" in p else x
    gates = p["weight_ih"] @ u + p.get("bias_ih", 0.0)
    H = h.shape[0]
    r, i = sigmoid(gates[:H]), sigmoid(gates[H:])
    a = sigmoid(-p["a_param"]) ** (c * r)
    h = a * h + jnp.sqrt(1 - a**2) * (i * u)
    return h, h


FAMILIES = {
    "mingru": (mingru, mingru_step, {}),
    "mingru_g": (mingru, mingru_step, {"candidate": "g"}),
    "minlstm": (minlstm, minlstm_step, {}),
    "minlstm_g": (minlstm, minlstm_step, {"candidate": "g"}),
    "lru": (lru, lru_step, {}),
    "rglru": (rglru, rglru_step, {}),
}
# (input_size, hidden_size, family options for param_shapes/init)
SIZES = {
    "mingru": (3, 4, {}),
    "mingru_g": (3, 4, {}),
    "minlstm": (3, 4, {}),
    "minlstm_g": (4, 4, {}),
    "lru": (3, 4, {"state_size": 5, "r_min": 0.5}),
    "rglru": (3, 4, {}),
}


def reference(step, params, xs, h0, *, lengths=None, resets=None, reverse=False):
    """Per sequence, per segment, per step: ``(ys (T, B, H), h_final (B, N))``."""
    steps, batch = xs.shape[:2]
    ys_rows, finals = [], []
    for b in range(batch):
        end = steps if lengths is None else int(lengths[b])
        starts = [0] + [t for t in range(1, end) if resets is not None and resets[t, b]]
        ys = [None] * steps
        final = None
        for s, e in zip(starts, [*starts[1:], end], strict=True):
            h = h0[b]
            for t in range(e - 1, s - 1, -1) if reverse else range(s, e):
                h, ys[t] = step(params, h, xs[t, b])
            if (reverse and s == 0) or (not reverse and e == end):
                final = h
        zero = jnp.zeros_like(ys[0])
        ys_rows.append(jnp.stack([zero if y is None else y for y in ys]))
        finals.append(final)
    return jnp.stack(ys_rows, axis=1), jnp.stack(finals)


def parallel_run(module, options, params, xs, h0, *, lengths=None, resets=None, **kwargs):
    """What a layer does: coefficients, one linear recurrence, readout, zero padded outputs."""
    valid = None if lengths is None else jnp.arange(xs.shape[0])[:, None] < lengths[None]
    a, b = module.coefficients(params, xs, **options)
    h_final, hs = linear_recurrence(a, b, h0, valid=valid, resets=resets, **kwargs)
    ys = module.readout(params, hs, xs)
    if valid is not None:
        ys = jnp.where(valid[..., None], ys, 0)
    return ys, h_final


def make_case(name, seed=0, batch=B, steps=T):
    module, _, options = FAMILIES[name]
    input_size, hidden_size, init_options = SIZES[name]
    key = jax.random.key(seed)
    params = module.init(key, input_size, hidden_size, **init_options, **options)
    rng = np.random.default_rng(seed)
    params = {
        k: v + 0.1 * rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()
    }
    xs = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    carry = module.init_carry(params, batch)
    h0 = rng.standard_normal(carry.shape).astype(np.float32)
    if jnp.iscomplexobj(carry):
        h0 = h0 + 1j * rng.standard_normal(carry.shape).astype(np.float32)
    return params, jnp.asarray(xs), jnp.asarray(h0, carry.dtype)


WORST: dict[str, float] = {}  # worst error per kind, for reports (``pytest -s`` prints it)


@pytest.fixture(autouse=True, scope="module")
def _print_worst_errors():
    yield
    print("\nworst scaled errors:", {k: f"{v:.2e}" for k, v in sorted(WORST.items())})


def scaled_error(got, want, kind: str = "forward") -> float:
    """``max|got - want| / max(1, max|want|)``, noted in :data:`WORST` under ``kind``."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    error = float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))
    WORST[kind] = max(WORST.get(kind, 0.0), error)
    return error


LENGTHS = np.array([7, 4, 1])
RESETS = np.zeros((T, B), bool)
RESETS[[2, 5], 0] = True
RESETS[[1, 3], 1] = True  # row 1 has length 4: a reset at t=5 would be padding
RESETS[4, 1] = True  # padding (length 4): ignored


def to64(tree):
    return jax.tree.map(
        lambda v: jnp.asarray(np.asarray(v), jnp.result_type(v.dtype, "float64")), tree
    )


# ---------------------------------------------------------------- linear_recurrence itself


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_linear_recurrence_matches_float64_loop_with_lengths_and_resets(method, reverse, dtype):
    rng = np.random.default_rng(1)
    shape = (T, B, 5)
    a = rng.uniform(-1, 1, shape) + (
        1j * rng.uniform(-0.5, 0.5, shape) if dtype != np.float32 else 0
    )
    b = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if dtype != np.float32 else 0)
    h0 = rng.standard_normal((B, 5)).astype(dtype)
    got_final, got = linear_recurrence(
        jnp.asarray(a, dtype), jnp.asarray(b, dtype), jnp.asarray(h0),
        valid=jnp.arange(T)[:, None] < LENGTHS[None], resets=jnp.asarray(RESETS),
        reverse=reverse, method=method,
    )  # fmt: skip
    chex.assert_shape(got, shape)
    chex.assert_type(got, dtype)
    step = lambda _, h, x: (x[0] * h + x[1],) * 2  # noqa: E731
    with jax.enable_x64(True):
        want, want_final = reference(
            step, None, jnp.asarray(np.stack([a, b], -2)), jnp.asarray(h0, np.complex128),
            lengths=LENGTHS, resets=RESETS, reverse=reverse,
        )  # fmt: skip
        want, want_final = np.asarray(want), np.asarray(want_final)
    assert scaled_error(got, want) <= TOL
    assert scaled_error(got_final, want_final) <= TOL


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_methods_agree_in_value_and_gradient(dtype):
    rng = np.random.default_rng(2)
    shape = (13, 2, 4)  # not a power of two: associative_scan's odd-length branch
    cplx = np.issubdtype(dtype, np.complexfloating)
    a = jnp.asarray(rng.uniform(-1, 1, shape) * (np.exp(1j) if cplx else 1), dtype)
    b = jnp.asarray(rng.standard_normal(shape), dtype)
    h0 = jnp.asarray(rng.standard_normal((2, 4)), dtype)
    resets = jnp.asarray(rng.random((13, 2)) < 0.2)
    valid = jnp.arange(13)[:, None] < jnp.array([13, 9])[None]
    w = jnp.asarray(rng.standard_normal(shape), np.float32)

    def loss(a, b, h0, method, reverse):
        hf, hs = linear_recurrence(
            a, b, h0, valid=valid, resets=resets, reverse=reverse, method=method
        )
        return jnp.sum(jnp.real(hs) * w) + jnp.sum(jnp.imag(hs) * w) + jnp.sum(jnp.abs(hf) ** 2)

    for reverse in (False, True):
        values = [jax.value_and_grad(loss, (0, 1, 2))(a, b, h0, m, reverse) for m in METHODS]
        (v1, g1), (v2, g2) = values
        assert scaled_error(v1, v2) <= TOL
        for x, y in zip(g1, g2, strict=True):
            assert scaled_error(x, y, "gradient") <= TOL


@pytest.mark.parametrize("constant_a", [False, True])
@pytest.mark.parametrize("complex_state", [False, True])
def test_sequential_backward_equals_autodiff_of_its_loop(constant_a, complex_state):
    """The hand-written backward of ``method="sequential"`` against JAX's own derivative of
    the same loop (what forward mode runs), in float64 so only a wrong formula can differ:
    the two agree to ~1e-15; a shifted ``a_{t+1}`` or a missing ``h0`` term is O(1)."""
    rng = np.random.default_rng(6)
    steps, batch, n = 11, 3, 4
    with jax.enable_x64(True):
        a = rng.uniform(-1, 1, (n,) if constant_a else (steps, batch, n))
        b = rng.standard_normal((steps, batch, n))
        h0 = rng.standard_normal((batch, n))
        if complex_state:
            a, b = a * np.exp(0.3j), b + 1j * rng.standard_normal(b.shape)
            h0 = h0 + 0j
        a, b, h0 = jnp.asarray(a), jnp.asarray(b), jnp.asarray(h0)
        valid = jnp.arange(steps)[:, None] < jnp.array([11, 7, 1])[None]
        resets = jnp.asarray(rng.random((steps, batch)) < 0.2)
        w = jnp.asarray(rng.standard_normal((steps, batch, n)))
        for reverse in (False, True):
            for masks in ({"valid": None, "resets": None}, {"valid": valid, "resets": resets}):
                grads = []
                for custom in (True, False):

                    def loss(a, b, h0, custom=custom, masks=masks, reverse=reverse):
                        hf, hs = _linear_recurrence(
                            a, b, h0, reset_state=None, reverse=reverse, method="sequential",
                            custom_backward=custom, **masks,
                        )  # fmt: skip
                        out = jnp.sum(jnp.real(hs * w)) + jnp.sum(jnp.imag(hs))
                        return out + jnp.sum(jnp.abs(hf) ** 2)

                    grads.append(jax.grad(loss, (0, 1, 2))(a, b, h0))
                for got, want in zip(*grads, strict=True):
                    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_sequential_runs_under_forward_mode():
    """``jax.jvp`` through ``method="sequential"`` (whose backward is hand-written) takes
    JAX's derivative of the loop and equals central differences."""
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        a = jnp.asarray(rng.uniform(-1, 1, (6, 2, 3)))
        b, v = (jnp.asarray(rng.standard_normal((6, 2, 3))) for _ in range(2))
        h0 = jnp.asarray(rng.standard_normal((2, 3)))

        def f(b):
            return linear_recurrence(a, b, h0, method="sequential")[1]

        _, tangent = jax.jvp(f, (b,), (v,))
        fd = (f(b + 1e-6 * v) - f(b - 1e-6 * v)) / 2e-6
        np.testing.assert_allclose(tangent, fd, rtol=1e-7, atol=1e-9)


def test_padded_steps_hold_the_state_and_output_zero():
    a = jnp.full((5, 2, 1), 0.5)
    b = jnp.ones((5, 2, 1))
    valid = jnp.arange(5)[:, None] < jnp.array([5, 2])[None]
    h_final, hs = linear_recurrence(a, b, jnp.zeros((2, 1)), valid=valid)
    np.testing.assert_allclose(hs[:, 1, 0], [1.0, 1.5, 0, 0, 0])
    np.testing.assert_allclose(h_final[:, 0], [1.9375, 1.5])
    # reverse: the pass over row 1 starts at its own last valid step (t = 1) from h0
    h_final, hs = linear_recurrence(a, b, jnp.zeros((2, 1)), valid=valid, reverse=True)
    np.testing.assert_allclose(hs[:, 1, 0], [1.5, 1.0, 0, 0, 0])
    np.testing.assert_allclose(h_final[:, 0], [1.9375, 1.5])


@pytest.mark.parametrize("reverse", [False, True])
def test_resets_equal_running_each_segment_separately(reverse):
    rng = np.random.default_rng(3)
    a = jnp.asarray(rng.uniform(0, 1, (12, 1, 3)), np.float32)
    b = jnp.asarray(rng.standard_normal((12, 1, 3)), np.float32)
    h0 = jnp.asarray(rng.standard_normal((1, 3)), np.float32)
    resets = jnp.zeros((12, 1), bool).at[jnp.array([4, 9])].set(True)
    _, together = linear_recurrence(a, b, h0, resets=resets, reverse=reverse)
    for s, e in ((0, 4), (4, 9), (9, 12)):
        _, alone = linear_recurrence(a[s:e], b[s:e], h0, reverse=reverse)
        np.testing.assert_allclose(together[s:e], alone, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_chunks_carried_between_calls_equal_one_call(method):
    rng = np.random.default_rng(4)
    a = jnp.asarray(rng.uniform(0, 1, (20, 2, 3)), np.float32)
    b = jnp.asarray(rng.standard_normal((20, 2, 3)), np.float32)
    h0 = jnp.asarray(rng.standard_normal((2, 3)), np.float32)
    resets = jnp.asarray(rng.random((20, 2)) < 0.25).at[8, 0].set(True)  # one on a border
    full_final, full = linear_recurrence(a, b, h0, resets=resets)
    carry, parts = h0, []
    for s, e in ((0, 8), (8, 13), (13, 20)):
        carry, part = linear_recurrence(
            a[s:e], b[s:e], carry, resets=resets[s:e], reset_state=h0, method=method
        )
        parts.append(part)
    np.testing.assert_allclose(jnp.concatenate(parts), full, atol=1e-6)
    np.testing.assert_allclose(carry, full_final, atol=1e-6)


# ---------------------------------------------------------------- families vs the papers


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("reverse", [False, True])
def test_family_equals_float64_reference_forward_and_gradient(name, reverse):
    module, step, options = FAMILIES[name]
    params, xs, h0 = make_case(name)
    lengths, resets = jnp.asarray(LENGTHS), jnp.asarray(RESETS)
    rng = np.random.default_rng(5)
    w = rng.standard_normal((T, B, SIZES[name][1]))
    cplx = jnp.iscomplexobj(h0)
    inputs = {"params": params, "xs": xs, "h0_re": jnp.real(h0)}
    if cplx:
        inputs["h0_im"] = jnp.imag(h0)

    def state(inp):
        return inp["h0_re"] + 1j * inp["h0_im"] if "h0_im" in inp else inp["h0_re"]

    def loss_of(ys, hf):
        return jnp.sum(ys * w) + jnp.sum(jnp.real(hf) ** 2) + jnp.sum(jnp.imag(hf))

    def ref_loss(inp):
        ys, hf = reference(
            lambda p, h, x: step(p, h, x, **options), inp["params"], inp["xs"], state(inp),
            lengths=LENGTHS, resets=RESETS, reverse=reverse,
        )  # fmt: skip
        return loss_of(ys, hf), (ys, hf)

    with jax.enable_x64(True):
        inp64 = to64(inputs)
        (_, (want_ys, want_hf)), want_grad = jax.jit(jax.value_and_grad(ref_loss, has_aux=True))(
            inp64
        )
        want_ys, want_hf, want_grad = jax.tree.map(np.asarray, (want_ys, want_hf, want_grad))

    for method in METHODS:

        def loss(inp, method=method):
            ys, hf = parallel_run(
                module, options, inp["params"], inp["xs"], state(inp).astype(h0.dtype),
                lengths=lengths, resets=resets, reverse=reverse, method=method,
            )  # fmt: skip
            return loss_of(ys, hf), (ys, hf)

        (_, (ys, hf)), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(inputs)
        chex.assert_type([ys, hf], [np.float32, h0.dtype])
        assert scaled_error(ys, want_ys) <= TOL, method
        assert scaled_error(hf, want_hf) <= TOL, method
        errors = jax.tree.map(lambda x, y: scaled_error(x, y, "gradient"), grad, want_grad)
        assert max(jax.tree.leaves(errors)) <= TOL, (method, errors)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_cell_stepped_equals_coefficients_scan(name):
    """The plain step (streaming, the lead's reference kernel) is the same recurrence."""
    module, _, options = FAMILIES[name]
    params, xs, h0 = make_case(name, seed=1)

    def body(h, x):
        return module.cell(params, h, x, **options)

    h_step, ys_step = jax.lax.scan(body, h0, xs)
    ys, hf = parallel_run(module, options, params, xs, h0, method="associative")
    assert scaled_error(ys, ys_step) <= TOL
    assert scaled_error(hf, h_step) <= TOL


@pytest.mark.parametrize("name", list(FAMILIES))
def test_param_shapes_init_and_coefficient_shapes(name):
    module, _, options = FAMILIES[name]
    input_size, hidden_size, init_options = SIZES[name]
    shapes = module.param_shapes(input_size, hidden_size, **init_options, **options)
    params = module.init(jax.random.key(0), input_size, hidden_size, **init_options, **options)
    assert list(params) == list(shapes)
    chex.assert_trees_all_equal_shapes(params, {k: jnp.zeros(s) for k, s in shapes.items()})
    chex.assert_tree_all_finite(params)
    xs = jnp.ones((T, B, input_size))
    a, b = module.coefficients(params, xs, **options)
    carry = module.init_carry(params, B)
    chex.assert_shape(b, (T, B, carry.shape[-1]))
    chex.assert_shape(a, (carry.shape[-1],) if module is lru else (T, B, carry.shape[-1]))
    chex.assert_type([a, b], carry.dtype)
    assert module.readout(params, b, xs).shape == (T, B, hidden_size)


def test_no_bias_drops_the_bias_entries():
    assert "bias_ih" not in mingru.param_shapes(3, 4, bias=False)
    assert "bias_ih" not in minlstm.init(jax.random.key(0), 3, 4, bias=False)
    assert set(rglru.param_shapes(3, 4, bias=False)) == {"weight_in", "weight_ih", "a_param"}
    assert set(rglru.param_shapes(4, 4)) == {"weight_ih", "bias_ih", "a_param"}


def test_initialisations_follow_the_papers():
    p = lru.init(jax.random.key(0), 8, 8, state_size=4096, r_min=0.4, r_max=0.9, max_phase=0.5)
    modulus = np.abs(np.asarray(lru.eigenvalues(p)))
    assert modulus.min() >= 0.4 and modulus.max() <= 0.9 + 1e-6
    assert np.all(np.angle(np.asarray(lru.eigenvalues(p))) <= 0.5 + 1e-6)
    np.testing.assert_allclose(np.exp(p["gamma_log"]), np.sqrt(1 - modulus**2), rtol=1e-5)
    assert abs(np.mean(modulus**2) - (0.4**2 + 0.9**2) / 2) < 0.01  # |λ|² uniform
    a = np.asarray(jax.nn.sigmoid(-rglru.init(jax.random.key(0), 8, 512)["a_param"]))
    assert a.min() >= 0.9 - 1e-6 and a.max() <= 0.999 + 1e-6
    w = mingru.init(jax.random.key(0), 8, 16)["weight_ih"]
    assert np.abs(w).max() <= 0.25 and np.abs(w).max() > 0.2  # U(±1/√H)


@pytest.mark.parametrize("module", [mingru, minlstm])
def test_log_coefficients_are_the_logs_of_the_g_coefficients(module):
    params, xs, _ = make_case("mingru_g" if module is mingru else "minlstm_g")
    a, b = module.coefficients(params, xs, candidate="g")
    log_a, log_b = module.log_coefficients(params, xs)
    np.testing.assert_allclose(jnp.exp(log_a), a, rtol=1e-5)
    np.testing.assert_allclose(jnp.exp(log_b), b, rtol=1e-5)
    with pytest.raises(ValueError, match="candidate='g'"):
        module.log_coefficients(params, xs, candidate="linear")


# ---------------------------------------------------------------- bad input


def test_bad_resets_and_valid_name_expected_and_got():
    a = b = jnp.ones((4, 2, 3))
    h0 = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"resets must have shape \(T, B\) = \(4, 2\), got"):
        linear_recurrence(a, b, h0, resets=jnp.zeros((2, 4), bool))
    with pytest.raises(TypeError, match="resets must be a boolean array, got dtype float32"):
        linear_recurrence(a, b, h0, resets=jnp.zeros((4, 2)))
    with pytest.raises(TypeError, match="valid must be a boolean array, got dtype int32"):
        linear_recurrence(a, b, h0, valid=jnp.ones((4, 2), jnp.int32))
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, N\) = \(2, 3\), got"):
        linear_recurrence(a, b, jnp.zeros((3,)))
    with pytest.raises(ValueError, match=r"reset_state must have shape \(B, N\) = \(2, 3\)"):
        linear_recurrence(a, b, h0, resets=jnp.zeros((4, 2), bool), reset_state=h0[0])
    with pytest.raises(ValueError, match=r"a must have shape \(T, B, N\) = \(4, 2, 3\) or"):
        linear_recurrence(jnp.ones((2, 3)), b, h0)
    with pytest.raises(TypeError, match="a must be a floating-point or complex array"):
        linear_recurrence(jnp.ones((4, 2, 3), jnp.int32), b, h0)
    with pytest.raises(ValueError, match="method must be one of"):
        linear_recurrence(a, b, h0, method="blelloch")  # pyright: ignore[reportArgumentType]


def test_families_reject_complex_inputs_and_wrong_shapes():
    params, xs, h0 = make_case("mingru")
    with pytest.raises(
        TypeError, match="x must be a real floating-point array, got dtype complex64"
    ):
        mingru.coefficients(params, xs.astype(jnp.complex64))
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, I\) with I = 3, got"):
        mingru.coefficients(params, xs[..., :2])
    with pytest.raises(ValueError, match="candidate must be one of"):
        minlstm.coefficients(params, xs, candidate="tanh")  # pyright: ignore[reportArgumentType]
    params, xs, h0 = make_case("lru")
    with pytest.raises(TypeError, match="the LRU state must be complex"):
        lru.cell(params, jnp.real(h0), xs[0])
    with pytest.raises(TypeError, match="x must be a real"):
        lru.cell(params, h0, xs[0].astype(jnp.complex64))
