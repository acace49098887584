"""``jaxrnn.crf``: the sequential scan vs the associative (parallel) scan, per shape.

    python -m benchmarks.crf_methods            # prints a table, writes nothing

Times the jitted forward + backward of ``-log_likelihood(...).sum()`` and ``viterbi_decode``
for each method, round-robin, best of ``--reps``; what ``method="auto"`` picks is printed
next to the faster one (``jaxrnn.crf.choose_method`` is set from this table).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import crf

SHAPES = [(32, 20, 72), (32, 64, 9), (8, 256, 4), (8, 512, 2), (8, 64, 4), (8, 128, 8)]


def _best(fn, args, reps: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args(argv)
    rows = []
    print(f"{'B, T, K':>14} | {'train scan':>10} {'parallel':>9} | {'viterbi scan':>12} "
          f"{'parallel':>9} | auto")  # fmt: skip
    for b, t, k in SHAPES:
        rng = np.random.default_rng(0)
        params = crf.init_params(jax.random.key(0), k)
        e = jnp.asarray(rng.normal(size=(b, t, k)), jnp.float32)
        y = jnp.asarray(rng.integers(0, k, (b, t)))
        n = jnp.asarray(rng.integers(1, t + 1, b))
        row = {"shape": (b, t, k)}
        for m in ("scan", "parallel"):

            def loss(p, e, m=m, y=y, n=n):
                return -crf.log_likelihood(p, e, y, n, method=m).sum()

            train = jax.jit(jax.grad(loss, argnums=(0, 1)))
            decode = jax.jit(lambda p, e, m=m, n=n: crf.viterbi_decode(p, e, n, method=m))
            row[f"train_{m}"] = _best(train, (params, e), args.reps)
            row[f"viterbi_{m}"] = _best(decode, (params, e), args.reps)
        row["auto"] = crf.choose_method(b, t, k)
        rows.append(row)
        print(
            f"{b:>4}, {t:>3}, {k:>3} | {1e3 * row['train_scan']:>8.2f}ms "
            f"{1e3 * row['train_parallel']:>7.2f}ms | {1e3 * row['viterbi_scan']:>10.2f}ms "
            f"{1e3 * row['viterbi_parallel']:>7.2f}ms | {row['auto']}"
        )
    return rows


if __name__ == "__main__":
    main()
