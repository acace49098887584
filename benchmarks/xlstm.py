"""xLSTM train-step timings: mLSTM chunkwise vs ``mlstm_kernels``' JAX chunkwise vs jaxrnn's
LSTM, and sLSTM vs LSTM, one jitted ``value_and_grad`` of ``sum(y**2)`` each.

    python -m benchmarks.xlstm                        # T = 1024 4096, B=8, 256 wide, 4 heads
    python -m benchmarks.xlstm --steps 1024 4096 16384 --reps 5

``mlstm_kernels``' JAX chunkwise package imports ``jax_triton`` in its ``__init__``, so its
native ``fw.py`` (plain JAX + einops) is loaded here from its file, bypassing that
``__init__``; it runs on the same projections as jaxrnn's mLSTM layer (``chunk_size=64``, its
default), so the two differ only in the memory kernel. Memory is XLA's compiled temp size of
the step. Nothing here is asserted; the numbers go to BENCHMARKS.md by hand.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time

import jax
import jax.numpy as jnp

import jaxrnn
from jaxrnn.families import mlstm as mlstm_family
from jaxrnn.params import Layout, init_params, layer_params


def _official_chunkwise():
    import mlstm_kernels

    path = os.path.join(os.path.dirname(mlstm_kernels.__file__), "jax/chunkwise/native/fw.py")
    spec = importlib.util.spec_from_file_location("_mlstm_kernels_chunkwise_fw", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mlstm_chunkwise_fw


def _steps(width: int, heads: int, batch: int, steps: int):
    key = jax.random.key(0)
    x = jax.random.normal(key, (steps, batch, width))
    opts = (("num_heads", heads),)
    p_m = init_params(key, Layout("mlstm", width, width, options=opts))
    p_s = init_params(key, Layout("slstm", width, width, options=opts))
    p_l = init_params(key, Layout("lstm", width, width))
    fw = _official_chunkwise()

    def layer_loss(family, **kw):
        def loss(p, x):
            return jnp.sum(jaxrnn.layer(family, p, x, **kw)[0] ** 2)

        return loss

    def official_loss(p, x):
        q, k, v, log_i, _, o = mlstm_family.projections(layer_params(p, 0, False), x)
        heads_ = log_i.shape[-1]
        g = layer_params(p, 0, False)
        f = (x @ g["weight_if"].T + g["bias_if"])[..., heads_:]
        bhs = [jnp.moveaxis(a, 0, 2) for a in (q, k, v, log_i, f)]
        h = fw(*bhs, chunk_size=64, eps=0.0)[0]
        return jnp.sum((o * jnp.moveaxis(h, 2, 0).reshape(o.shape)) ** 2)

    cases = {
        "mLSTM chunkwise (jaxrnn)": (layer_loss("mlstm"), p_m),
        "mLSTM chunkwise (mlstm_kernels JAX native)": (official_loss, p_m),
        "LSTM (jaxrnn, auto)": (layer_loss("lstm"), p_l),
        "sLSTM (jaxrnn, scan)": (layer_loss("slstm"), p_s),
    }
    return x, {n: (jax.jit(jax.value_and_grad(f)), p) for n, (f, p) in cases.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"backend {jax.default_backend()}, load {os.getloadavg()}")
    print("| T | step | median s (min-max) | temp MiB |\n|---|---|---|---|")
    for steps in args.steps:
        x, fns = _steps(args.width, args.heads, args.batch, steps)
        times: dict[str, list[float]] = {n: [] for n in fns}
        memory = {}
        for name, (fn, p) in fns.items():
            compiled = fn.lower(p, x).compile()
            memory[name] = compiled.memory_analysis().temp_size_in_bytes / 2**20  # type: ignore[union-attr]
            jax.block_until_ready(fn(p, x))
        for _ in range(args.reps):  # round-robin, so load hits every case alike
            for name, (fn, p) in fns.items():
                start = time.perf_counter()
                jax.block_until_ready(fn(p, x))
                times[name].append(time.perf_counter() - start)
        for name, t in times.items():
            print(
                f"| {steps} | {name} | {statistics.median(t):.3f} ({min(t):.3f}-{max(t):.3f}) "
                f"| {memory[name]:.0f} |"
            )


if __name__ == "__main__":
    main()
