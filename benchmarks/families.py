"""Training-step time of the linear-recurrence families vs jaxrnn's LSTM, per kernel and T.

``python -m benchmarks.families [--steps 128 1024 4096 16384] [--reps 5]``

One layer, ``B=8``, ``input = hidden = 256``, float32; a training step is ``jax.grad`` of
``sum(outputs)`` with respect to the parameters, jitted, compile excluded. For each ``T`` all
contenders are built in this one process, warmed up, then timed round-robin (rep 1: A, B, C;
rep 2: A, B, C; ...) so load from other processes hits all of them alike. Printed: the
median per contender and its ratio to the LSTM step (the issue's target is <= 0.1x).

Contenders: minGRU and LRU through ``coefficients`` + :func:`linear_recurrence` +
``readout`` with ``method="associative"`` and ``"sequential"``; minGRU in the paper's
log-space form (``candidate="g"``, ``cumsum`` + ``cumlogsumexp``, no ``h0``/lengths/resets);
and ``jaxrnn.lstm``. Nothing here is a test: no time is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn.families import lru, mingru
from jaxrnn.kernels.parallel import linear_recurrence
from jaxrnn.params import Layout, init_params

BATCH, SIZE = 8, 256


def _recurrent(module, method: str, options=None):
    options = options or {}

    def loss(params, xs):
        a, b = module.coefficients(params, xs, **options)
        h0 = jnp.zeros(b.shape[1:], b.dtype)
        _, hs = linear_recurrence(a, b, h0, method=method)
        return module.readout(params, hs, xs).sum()

    return loss


def _log_space(params, xs):
    """minGRU in log space (Feng et al. 2024, log-space appendix), ``h0 = 0``."""
    log_a, log_b = mingru.log_coefficients(params, xs)
    a_star = jnp.cumsum(log_a, axis=0)
    hs = jnp.exp(a_star + jax.lax.cumlogsumexp(log_b - a_star, axis=0))
    return hs.sum()


def _lstm(params, xs):
    return jaxrnn.lstm(params, xs)[0].sum()


def contenders(key) -> dict[str, tuple]:
    k1, k2, k3 = jax.random.split(key, 3)
    p_gru = mingru.init(k1, SIZE, SIZE)
    p_lru = lru.init(k2, SIZE, SIZE)
    p_lstm = init_params(k3, Layout("lstm", SIZE, SIZE))
    return {
        "lstm (jaxrnn)": (_lstm, p_lstm),
        "mingru associative": (_recurrent(mingru, "associative"), p_gru),
        "mingru sequential": (_recurrent(mingru, "sequential"), p_gru),
        "mingru log-space": (_log_space, p_gru),
        "lru associative": (_recurrent(lru, "associative"), p_lru),
        "lru sequential": (_recurrent(lru, "sequential"), p_lru),
    }


def measure(steps: int, reps: int, names: list[str] | None = None) -> dict[str, list[float]]:
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((steps, BATCH, SIZE)), jnp.float32)
    runners = {}
    for name, (loss, params) in contenders(jax.random.key(0)).items():
        if names and not any(n in name for n in names):
            continue
        step = jax.jit(jax.grad(loss))
        jax.block_until_ready(step(params, xs))  # compile
        runners[name] = (step, params)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(reps):
        for name, (step, params) in runners.items():
            start = time.perf_counter()
            jax.block_until_ready(step(params, xs))
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description="Training-step time of the families vs LSTM.")
    parser.add_argument("--steps", type=int, nargs="+", default=[128, 1024, 4096, 16384])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="substrings of contender names to run")
    args = parser.parse_args()
    print(f"training step, B={BATCH}, I=H={SIZE}, 1 layer, float32, {jax.devices()[0]}")
    print(f"{'T':>6}  {'contender':<22}{'median s':>10}{'x LSTM':>9}   min-max")
    for steps in args.steps:
        times = measure(steps, args.reps, args.only)
        base = statistics.median(times["lstm (jaxrnn)"]) if "lstm (jaxrnn)" in times else None
        for name, ts in times.items():
            med = statistics.median(ts)
            ratio = f"{med / base:9.3f}" if base else f"{'-':>9}"
            print(f"{steps:>6}  {name:<22}{med:>10.4f}{ratio}   {min(ts):.4f}-{max(ts):.4f}")


if __name__ == "__main__":
    main()
