"""Gradient parity with torch autograd.

The loss is a randomly weighted sum of the output and the final states, so every entry of
every gradient is exercised and nothing cancels by symmetry. Gradients with respect to the
input, the initial states and every weight must match torch within 1e-4 relative:
``max|jax - torch| <= 1e-4 * max(1, max|torch|)``.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import KINDS, config, jax_fn, random_data, record, torch_module, torch_run

from jaxrnn.interop import from_torch

# float32 vs an independent reference: full float32 matmuls, also on a GPU (TF32 there)
pytestmark = pytest.mark.usefixtures("float32_matmuls")

torch = pytest.importorskip("torch")

RTOL = 1e-4

# Every kind x bidirectional x lengths x depth, plus batch_first/no-bias variants per kind.
CASES = [
    (kind, layers, bidir, lengths, False, True)
    for kind, layers, bidir, lengths in itertools.product(
        KINDS, (1, 3), (False, True), (False, True)
    )
] + [(kind, 2, True, True, True, False) for kind in KINDS]


def case_id(case) -> str:
    kind, layers, bidir, lengths, batch_first, bias = case
    flags = [("bidir", bidir), ("lengths", lengths), ("bf", batch_first), ("nobias", not bias)]
    return "-".join([kind, f"L{layers}"] + [name for name, on in flags if on])


def weighted_loss(weights, out, h, c):
    loss = (weights[0] * out).sum() + (weights[1] * h).sum()
    return loss if c is None else loss + (weights[2] * c).sum()


def torch_grads(m, cfg, x, hx, lengths, weights):
    tx = torch.tensor(x, requires_grad=True)
    states = hx if cfg.is_lstm else (hx,)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    out, state = torch_run(m, cfg, tx, tuple(ts) if cfg.is_lstm else ts[0], lengths)
    h, c = state if cfg.is_lstm else (state, None)
    m.zero_grad()
    weighted_loss([torch.from_numpy(w) for w in weights], out, h, c).backward()
    params = {name: p.grad.numpy() for name, p in m.named_parameters()}
    return params, tx.grad.numpy(), [s.grad.numpy() for s in ts]


def jax_grads(cfg, params, x, hx, lengths, weights):
    fn = jax_fn(cfg)
    lengths = None if lengths is None else jnp.asarray(lengths)
    weights = [jnp.asarray(w) for w in weights]

    def loss(params, x, states):
        out, state = fn(
            params,
            x,
            tuple(states) if cfg.is_lstm else states[0],
            lengths=lengths,
            batch_first=cfg.batch_first,
        )
        h, c = state if cfg.is_lstm else (state, None)
        return weighted_loss(weights, out, h, c)

    states = [jnp.asarray(s) for s in (hx if cfg.is_lstm else (hx,))]
    return jax.grad(loss, argnums=(0, 1, 2))(params, jnp.asarray(x), states)


def relative_error(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want))))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gradients_match_torch(case):
    kind, layers, bidir, lengths, batch_first, bias = case
    index = CASES.index(case)
    # input_size = what upper layers read, so every layer of every depth reuses one compiled
    # scan per direction and the cases stay cheap; test_parity covers input_size != that.
    directions = 2 if bidir else 1
    cfg = config(
        kind,
        input_size=directions * (3 if kind == "lstm_proj" else 6),
        num_layers=layers,
        bidirectional=bidir,
        batch_first=batch_first,
        bias=bias,
    )
    rng = np.random.default_rng(1000 + index)
    m = torch_module(cfg, seed=index)
    x, hx, lens = random_data(cfg, rng, with_lengths=lengths)
    t, b = (x.shape[1], x.shape[0]) if batch_first else x.shape[:2]
    out_shape = (b, t) if batch_first else (t, b)
    weights = [
        rng.standard_normal((*out_shape, directions * cfg.out_size)).astype(np.float32),
        rng.standard_normal((cfg.num_states, b, cfg.out_size)).astype(np.float32),
        rng.standard_normal((cfg.num_states, b, cfg.hidden_size)).astype(np.float32),
    ]

    want_p, want_x, want_s = torch_grads(m, cfg, x, hx, lens, weights)
    got_p, got_x, got_s = jax_grads(cfg, from_torch(m), x, hx, lens, weights)

    assert sorted(got_p) == sorted(want_p)
    errors = {name: relative_error(got_p[name], want_p[name]) for name in want_p}
    errors["input"] = relative_error(got_x, want_x)
    for i, (g, w) in enumerate(zip(got_s, want_s, strict=True)):
        errors[("h_0", "c_0")[i]] = relative_error(g, w)
    worst = max(errors, key=errors.get)
    record("gradient", errors[worst], f"{case_id(case)} d/d{worst}")
    assert errors[worst] <= RTOL, errors
