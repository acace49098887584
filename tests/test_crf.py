"""``jaxrnn.crf`` against brute force over every tag path, finite differences, and an independent
float64 NumPy transcription of ``pytorch-crf``'s formulas (time-major, ``mask``-based)."""

from __future__ import annotations

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrnn import crf

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

TAGS = ["O", "B-a", "I-a", "B-b", "I-b"]
METHODS = ("scan", "parallel")


def _problem(seed: int, b: int, t: int, k: int, start_end: bool = True, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = {"transitions": rng.normal(size=(k, k)).astype(dtype)}
    if start_end:
        params["start"] = rng.normal(size=k).astype(dtype)
        params["end"] = rng.normal(size=k).astype(dtype)
    emissions = rng.normal(size=(b, t, k)).astype(dtype)
    tags = rng.integers(0, k, (b, t))
    return params, emissions, tags


def _score(params, emit, path) -> float:
    """``score(path)`` of one sequence, written out as the sum it is."""
    k = emit.shape[-1]
    start = params.get("start", np.zeros(k))
    end = params.get("end", np.zeros(k))
    s = start[path[0]] + end[path[-1]] + sum(emit[t, y] for t, y in enumerate(path))
    return s + sum(params["transitions"][path[t - 1], path[t]] for t in range(1, len(path)))


def _allowed(path, c: crf.Constraints | None) -> bool:
    if c is None:
        return True
    ok = c.start[path[0]] and c.end[path[-1]]
    return bool(ok and all(c.transitions[a, b] for a, b in itertools.pairwise(path)))


def _enumerate(params, emit, n, constraints=None):
    """All allowed paths of length ``n`` and their scores (float64)."""
    k = emit.shape[-1]
    paths = [p for p in itertools.product(range(k), repeat=n) if _allowed(p, constraints)]
    return paths, np.array([_score(params, emit, p) for p in paths])


def _logsumexp(x):
    m = x.max()
    return m + np.log(np.exp(x - m).sum())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("start_end", [True, False])
@pytest.mark.parametrize("constrained", [False, True])
def test_log_partition_likelihood_and_viterbi_match_enumeration(method, start_end, constrained):
    b, t, k = 4, 5, len(TAGS)
    params, emissions, tags = _problem(0, b, t, k, start_end)
    lengths = np.array([5, 3, 1, 4])
    c = crf.bio_constraints(TAGS) if constrained else None
    if constrained:  # gold paths that obey the rules
        tags[:, 0] = [0, 1, 3, 0]
        tags[:, 1:] = 0
        tags[0, 1:3] = [1, 2]
    with jax.enable_x64(True):
        args = (params, emissions)
        log_z = crf.log_partition(*args, lengths, constraints=c, method=method)
        ll = crf.log_likelihood(*args, tags, lengths, constraints=c, method=method)
        paths, best = crf.viterbi_decode(*args, lengths, constraints=c, method=method)
        assert log_z.dtype == jnp.float64 and paths.dtype == jnp.int32
    worst = 0.0
    for i, n in enumerate(lengths):
        cand, scores = _enumerate(params, emissions[i], n, c)
        ref_z = _logsumexp(scores)
        ref_ll = _score(params, emissions[i], tags[i, :n]) - ref_z
        worst = max(worst, abs(float(log_z[i]) - ref_z), abs(float(ll[i]) - ref_ll))
        assert tuple(np.asarray(paths[i, :n])) == cand[int(scores.argmax())]
        np.testing.assert_allclose(float(best[i]), scores.max(), rtol=0, atol=1e-12)
        assert np.all(np.asarray(paths[i, n:]) == crf.PAD_TAG)
    assert worst < 1e-12, worst


@pytest.mark.parametrize("method", METHODS)
def test_float32_matches_enumeration(method):
    params, emissions, tags = _problem(1, 3, 4, 3)
    lengths = np.array([4, 2, 3])
    p32 = {n: jnp.asarray(v, jnp.float32) for n, v in params.items()}
    e32 = jnp.asarray(emissions, jnp.float32)
    ll = crf.log_likelihood(p32, e32, tags, lengths, method=method)
    paths, best = crf.viterbi_decode(p32, e32, lengths, method=method)
    assert ll.dtype == jnp.float32
    for i, n in enumerate(lengths):
        cand, scores = _enumerate(params, emissions[i], n)
        ref = _score(params, emissions[i], tags[i, :n]) - _logsumexp(scores)
        np.testing.assert_allclose(float(ll[i]), ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(best[i]), scores.max(), rtol=1e-5, atol=1e-5)
        assert tuple(np.asarray(paths[i, :n])) == cand[int(scores.argmax())]


@pytest.mark.parametrize("method", METHODS)
def test_marginals_match_enumeration(method):
    params, emissions, _ = _problem(2, 2, 4, 3)
    lengths = np.array([4, 2])
    with jax.enable_x64(True):
        marg = np.asarray(crf.marginals(params, emissions, lengths, method=method))
    for i, n in enumerate(lengths):
        paths, scores = _enumerate(params, emissions[i], n)
        prob = np.exp(scores - _logsumexp(scores))
        ref = np.zeros((4, 3))
        for p, q in zip(paths, prob, strict=True):
            ref[np.arange(n), list(p)] += q
        np.testing.assert_allclose(marg[i], ref, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_padding_is_ignored_exactly(method):
    params, emissions, tags = _problem(3, 3, 7, 4, dtype=np.float32)
    lengths = jnp.array([7, 2, 5])
    other_e, other_t = emissions.copy(), tags.copy()
    rng = np.random.default_rng(9)
    for i, n in enumerate(np.asarray(lengths)):
        other_e[i, n:] = 100 * rng.normal(size=other_e[i, n:].shape)
        other_t[i, n:] = rng.integers(0, 4, other_t[i, n:].shape)
    a = crf.log_likelihood(params, emissions, tags, lengths, method=method)
    b = crf.log_likelihood(params, other_e, other_t, lengths, method=method)
    chex.assert_trees_all_equal(a, b)
    chex.assert_trees_all_equal(
        crf.viterbi_decode(params, emissions, lengths, method=method),
        crf.viterbi_decode(params, other_e, lengths, method=method),
    )
    # a sequence padded with extra steps gives what it gives alone
    short = crf.log_likelihood(params, emissions[1:2, :2], tags[1:2, :2], method=method)
    np.testing.assert_allclose(a[1], short[0], rtol=1e-6)


def test_length_zero_gives_zero():
    params, emissions, tags = _problem(4, 2, 3, 3, dtype=np.float32)
    lengths = jnp.array([0, 3])
    for method in METHODS:
        ll = crf.log_likelihood(params, emissions, tags, lengths, method=method)
        paths, best = crf.viterbi_decode(params, emissions, lengths, method=method)
        assert float(ll[0]) == 0.0 and float(best[0]) == 0.0
        assert np.all(np.asarray(paths[0]) == crf.PAD_TAG)


def _pytorch_crf_reference(params, emissions, tags, mask):
    """``pytorch-crf``'s ``CRF.forward`` (reduction "none") and ``_viterbi_decode``, transcribed
    into float64 NumPy in its own layout: ``emissions (T, B, K)``, ``tags (T, B)``, ``mask (T, B)``
    with the first step always on."""
    start, end, trans = params["start"], params["end"], params["transitions"]
    t_len, b, _ = emissions.shape
    m = mask.astype(np.float64)
    # _compute_score
    score = start[tags[0]] + emissions[0, np.arange(b), tags[0]]
    for i in range(1, t_len):
        score += trans[tags[i - 1], tags[i]] * m[i]
        score += emissions[i, np.arange(b), tags[i]] * m[i]
    seq_ends = mask.sum(0) - 1
    score += end[tags[seq_ends, np.arange(b)]]
    # _compute_normalizer
    alpha = start + emissions[0]
    for i in range(1, t_len):
        nxt = alpha[:, :, None] + trans[None] + emissions[i][:, None, :]
        mx = nxt.max(1, keepdims=True)
        nxt = (mx + np.log(np.exp(nxt - mx).sum(1, keepdims=True)))[:, 0]
        alpha = np.where(mask[i][:, None], nxt, alpha)
    alpha = alpha + end
    mx = alpha.max(1, keepdims=True)
    log_z = (mx + np.log(np.exp(alpha - mx).sum(1, keepdims=True)))[:, 0]
    # _viterbi_decode
    delta, history = start + emissions[0], []
    for i in range(1, t_len):
        nxt = delta[:, :, None] + trans[None] + emissions[i][:, None, :]
        history.append(nxt.argmax(1))
        delta = np.where(mask[i][:, None], nxt.max(1), delta)
    delta = delta + end
    best = []
    for j in range(b):
        tag = [int(delta[j].argmax())]
        for hist in reversed(history[: seq_ends[j]]):
            tag.append(int(hist[j][tag[-1]]))
        best.append(tag[::-1])
    return score - log_z, best


@pytest.mark.parametrize("method", METHODS)
def test_likelihood_and_decode_match_pytorch_crf_formulas(method):
    b, t, k = 6, 9, 7
    params, emissions, tags = _problem(5, b, t, k)
    lengths = np.array([9, 1, 4, 6, 9, 2])
    mask = (np.arange(t)[:, None] < lengths[None, :]).astype(bool)
    ref_ll, ref_paths = _pytorch_crf_reference(
        params, emissions.swapaxes(0, 1), tags.T.copy(), mask
    )
    with jax.enable_x64(True):
        ll = crf.log_likelihood(params, emissions, tags, lengths, method=method)
        paths, _ = crf.viterbi_decode(params, emissions, lengths, method=method)
    np.testing.assert_allclose(np.asarray(ll), ref_ll, rtol=0, atol=1e-12)
    for i, n in enumerate(lengths):
        assert list(np.asarray(paths[i, :n])) == ref_paths[i]


@pytest.mark.parametrize("method", METHODS)
def test_gradients_match_finite_differences_in_float64(method):
    params, emissions, tags = _problem(6, 2, 4, 3)
    lengths = np.array([4, 3])
    c = crf.bio_constraints(["O", "B-x", "I-x"])
    tags[:] = [[1, 2, 0, 1], [0, 1, 2, 0]]
    with jax.enable_x64(True):
        theta = {**{n: jnp.asarray(v) for n, v in params.items()}, "e": jnp.asarray(emissions)}

        def f(th):
            p = {n: v for n, v in th.items() if n != "e"}
            ll = crf.log_likelihood(p, th["e"], tags, lengths, constraints=c, method=method)
            return jnp.sum(ll * jnp.array([1.0, 0.7]))

        grads = jax.grad(f)(theta)
        eps, worst = 1e-6, 0.0
        for name, value in theta.items():
            flat = np.asarray(value).ravel()
            for j in range(flat.size):
                up, down = flat.copy(), flat.copy()
                up[j] += eps
                down[j] -= eps
                fd = (
                    f({**theta, name: jnp.asarray(up.reshape(value.shape))})
                    - f({**theta, name: jnp.asarray(down.reshape(value.shape))})
                ) / (2 * eps)
                worst = max(worst, abs(float(fd) - float(np.asarray(grads[name]).ravel()[j])))
    assert worst < 1e-8, worst


@pytest.mark.slow
def test_scan_and_parallel_agree_on_larger_problems():
    for seed, (b, t, k) in enumerate([(3, 33, 5), (2, 64, 2), (4, 17, 12)]):
        params, emissions, tags = _problem(10 + seed, b, t, k, dtype=np.float32)
        lengths = jnp.array(np.random.default_rng(seed).integers(1, t + 1, b))
        out = {
            m: (
                crf.log_likelihood(params, emissions, tags, lengths, method=m),
                *crf.viterbi_decode(params, emissions, lengths, method=m),
            )
            for m in METHODS
        }
        np.testing.assert_allclose(out["scan"][0], out["parallel"][0], rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(out["scan"][1], out["parallel"][1])
        np.testing.assert_allclose(out["scan"][2], out["parallel"][2], rtol=1e-5, atol=1e-4)


def test_gradients_of_scan_and_parallel_agree():
    params, emissions, tags = _problem(20, 3, 12, 4, dtype=np.float32)
    lengths = jnp.array([12, 5, 9])

    def loss(p, e, method):
        return -jnp.sum(crf.log_likelihood(p, e, tags, lengths, method=method))

    gs = jax.grad(loss, argnums=(0, 1))(params, emissions, "scan")
    gp = jax.grad(loss, argnums=(0, 1))(params, emissions, "parallel")
    chex.assert_trees_all_close(gs, gp, rtol=1e-4, atol=1e-5)


def test_jit_vmap_and_grad():
    params, emissions, tags = _problem(7, 3, 6, 4, dtype=np.float32)
    lengths = jnp.array([6, 2, 4])
    c = crf.bio_constraints(["O", "B-x", "I-x", "B-y"])
    tags = np.zeros_like(tags)
    for method in ("auto", *METHODS):
        ll = crf.log_likelihood(params, emissions, tags, lengths, constraints=c, method=method)
        jitted = jax.jit(
            lambda p, e, y, n, m=method: crf.log_likelihood(p, e, y, n, constraints=c, method=m)
        )
        chex.assert_trees_all_close(jitted(params, emissions, tags, lengths), ll, rtol=1e-6)
        dec = jax.jit(
            lambda p, e, n, m=method: crf.viterbi_decode(p, e, n, constraints=c, method=m)
        )
        chex.assert_trees_all_close(
            dec(params, emissions, lengths),
            crf.viterbi_decode(params, emissions, lengths, constraints=c, method=method),
        )
    # vmap over an ensemble of CRFs: each member as if called alone
    stack = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), params)
    many = jax.vmap(lambda p: crf.log_likelihood(p, emissions, tags, lengths))(stack)
    twice = jax.tree.map(lambda x: 2 * x, params)
    chex.assert_trees_all_close(
        many[1], crf.log_likelihood(twice, emissions, tags, lengths), rtol=1e-6
    )
    paths = jax.vmap(lambda e: crf.viterbi_decode(params, e, lengths)[0])(
        jnp.stack([emissions, -emissions])
    )
    chex.assert_trees_all_equal(paths[1], crf.viterbi_decode(params, -emissions, lengths)[0])
    g = jax.grad(lambda p: -crf.log_likelihood(p, emissions, tags, lengths, constraints=c).sum())(
        params
    )
    chex.assert_tree_all_finite(g)
    chex.assert_trees_all_equal_shapes(g, params)


def test_bio_constraints_from_tag_names():
    c = crf.bio_constraints(TAGS)
    # I-a only after B-a / I-a; I-b only after B-b / I-b; I-x never first
    np.testing.assert_array_equal(
        c.transitions.astype(int),
        [
            [1, 1, 0, 1, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 0, 1, 1],
            [1, 1, 0, 1, 1],
        ],
    )
    assert c.start.tolist() == [True, True, False, True, False] and c.end.all()
    with pytest.raises(TypeError, match="list of strings"):
        crf.bio_constraints("B-a I-a")
    with pytest.raises(ValueError, match="non-empty"):
        crf.bio_constraints([])


def test_constrained_decoding_never_breaks_the_rules():
    k = len(TAGS)
    c = crf.bio_constraints(TAGS)
    params, emissions, _ = _problem(8, 16, 8, k, dtype=np.float32)
    emissions[:, :, 2] += 3.0  # make I-a tempting everywhere
    lengths = jnp.array(np.random.default_rng(0).integers(1, 9, 16))
    for method in METHODS:
        paths, _ = crf.viterbi_decode(params, emissions, lengths, constraints=c, method=method)
        for i, n in enumerate(np.asarray(lengths)):
            assert _allowed(tuple(np.asarray(paths[i, :n])), c)


def test_auto_picks_by_backend_and_shape():
    assert crf.choose_method(8, 512, 2, backend="cpu") == "scan"  # faster on CPU throughout
    assert crf.choose_method(8, 512, 2, backend="gpu") == "parallel"
    assert crf.choose_method(32, 20, 72, backend="gpu") == "scan"
    assert crf.choose_method(8, 512, 2, "parallel", backend="cpu") == "parallel"


def test_bad_inputs_name_what_was_expected():
    params, emissions, tags = _problem(0, 2, 3, 4, dtype=np.float32)
    with pytest.raises(ValueError, match=r"3-D \(B, T, K\)"):
        crf.log_partition(params, emissions[0])
    with pytest.raises(TypeError, match="floating-point"):
        crf.log_partition(params, tags[..., None])
    with pytest.raises(ValueError, match=r"params\['transitions'\] must have shape \(4, 4\)"):
        crf.log_partition({"transitions": np.zeros((3, 3), np.float32)}, emissions)
    with pytest.raises(ValueError, match=r"params\['start'\] must have shape \(4,\)"):
        crf.log_partition({**params, "start": np.zeros(5, np.float32)}, emissions)
    with pytest.raises(TypeError, match="'transitions'"):
        crf.log_partition({"trans": params["transitions"]}, emissions)
    with pytest.raises(ValueError, match=r"tags must have shape \(B, T\) = \(2, 3\)"):
        crf.log_likelihood(params, emissions, tags[:, :2])
    with pytest.raises(TypeError, match="tags must be integer"):
        crf.log_likelihood(params, emissions, tags.astype(np.float32))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(2,\)"):
        crf.viterbi_decode(params, emissions, jnp.array([3]))
    with pytest.raises(TypeError, match="lengths must be integers"):
        crf.viterbi_decode(params, emissions, jnp.array([3.0, 2.0]))
    with pytest.raises(ValueError, match="method must be"):
        crf.viterbi_decode(params, emissions, method="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"constraints.transitions must have shape \(4, 4\)"):
        crf.viterbi_decode(params, emissions, constraints=crf.bio_constraints(["O", "B-a"]))
    with pytest.raises(TypeError, match="Constraints"):
        crf.viterbi_decode(params, emissions, constraints=np.ones((4, 4), bool))  # type: ignore
    with pytest.raises(ValueError, match="num_tags"):
        crf.init_params(jax.random.key(0), 0)


def test_init_params_like_pytorch_crf():
    p = crf.init_params(jax.random.key(0), 6)
    chex.assert_shape((p["transitions"], p["start"], p["end"]), [(6, 6), (6,), (6,)])
    assert float(jnp.max(jnp.abs(p["transitions"]))) <= 0.1
    assert set(crf.init_params(jax.random.key(0), 6, start_end=False)) == {"transitions"}


def test_linen_crf_module():
    import jaxrnn.linen as rnn

    params, emissions, tags = _problem(11, 3, 5, len(TAGS), dtype=np.float32)
    lengths = jnp.array([5, 3, 1])
    tags = np.zeros_like(tags)
    c = crf.bio_constraints(TAGS)
    model = rnn.CRF(len(TAGS), constraints=c)
    variables = model.init(jax.random.key(0), emissions, tags, lengths)
    chex.assert_shape(
        [variables["params"][n] for n in ("transitions", "start", "end")],
        [(5, 5), (5,), (5,)],
    )
    ll = model.apply({"params": params}, emissions, tags, lengths)
    chex.assert_trees_all_close(
        ll, crf.log_likelihood(params, emissions, tags, lengths, constraints=c)
    )
    dec = model.apply({"params": params}, emissions, lengths, method=rnn.CRF.decode)
    chex.assert_trees_all_equal(dec, crf.viterbi_decode(params, emissions, lengths, constraints=c))
    bare = rnn.CRF(len(TAGS), start_end=False)
    assert set(bare.init(jax.random.key(0), emissions, tags)["params"]) == {"transitions"}


def test_nnx_crf_module():
    from flax import nnx

    import jaxrnn.nnx as rnn

    params, emissions, tags = _problem(12, 3, 5, len(TAGS), dtype=np.float32)
    lengths = jnp.array([5, 3, 1])
    tags = np.zeros_like(tags)
    c = crf.bio_constraints(TAGS)
    model = rnn.CRF(len(TAGS), constraints=c, rngs=nnx.Rngs(0))
    for name, value in params.items():
        getattr(model, name)[...] = jnp.asarray(value)
    ll = model(emissions, tags, lengths)
    chex.assert_trees_all_close(
        ll, crf.log_likelihood(params, emissions, tags, lengths, constraints=c)
    )
    chex.assert_trees_all_equal(
        model.decode(emissions, lengths),
        crf.viterbi_decode(params, emissions, lengths, constraints=c),
    )

    @nnx.jit
    def loss_and_grad(m, e):
        return nnx.value_and_grad(lambda m: -m(e, tags, lengths).sum())(m)

    loss, grads = loss_and_grad(model, emissions)
    np.testing.assert_allclose(float(loss), -float(ll.sum()), rtol=1e-5)
    chex.assert_tree_all_finite(nnx.state(grads))
