"""oneDNN kernels vs torch.nn vs jaxrnn's XLA path, interleaved in one process.

Run from the repository root: ``python plugins/onednn/bench.py [--reps 9] [--cases std]``.
Each case builds one ``torch.nn`` module; all three peers run its weights on the same
``(T, B, I)`` input. ``step`` is a training step (forward + backward of ``sum(output)``, all
parameter gradients), ``fwd`` a forward pass. Peers are timed round-robin and the median is
reported with the ratios native/torch and native/xla (< 1: native is faster).
:func:`native_runners` has the signature of ``benchmarks.peers`` builders for reuse there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the local jaxrnn

import jaxrnn_onednn

import jaxrnn

Runner = Callable[[], object]
MODES = {"lstm": "lstm", "gru": "gru", "rnn": "rnn_tanh"}
CASES = {  # name: (mode, B, T, I, H, layers, bidirectional)
    "std-lstm": ("lstm", 32, 128, 64, 256, 2, False),
    "std-gru": ("gru", 32, 128, 64, 256, 2, False),
    "std-rnn": ("rnn", 32, 128, 64, 256, 2, False),
    "std-lstm-bi": ("lstm", 32, 128, 64, 256, 2, True),
    "small-lstm": ("lstm", 8, 64, 32, 64, 1, False),
    "small-gru": ("gru", 8, 64, 32, 64, 1, False),
    "small-rnn": ("rnn", 8, 64, 32, 64, 1, False),
    "long-lstm": ("lstm", 8, 2048, 32, 128, 1, False),
    "long-gru": ("gru", 8, 2048, 32, 128, 1, False),
    "long-rnn": ("rnn", 8, 2048, 32, 128, 1, False),
}


def _jax_runners(fwd, params, x) -> dict[str, Runner]:
    step = jax.jit(jax.value_and_grad(lambda p, x: fwd(p, x).sum()))
    fwd = jax.jit(fwd)
    return {
        "step": lambda: jax.block_until_ready(step(params, x)),
        "fwd": lambda: jax.block_until_ready(fwd(params, x)),
    }


def _state_dict(module) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v.detach().numpy()) for k, v in module.state_dict().items()}


def native_runners(mode: str, module, x: np.ndarray) -> dict[str, Runner]:
    """Jitted native training step and forward for ``module``'s weights; ``mode`` lstm|gru|rnn."""
    name = MODES[mode]
    return _jax_runners(lambda p, x: jaxrnn_onednn.rnn(name, p, x)[0], _state_dict(module), x)


def xla_runners(mode: str, module, x: np.ndarray) -> dict[str, Runner]:
    fn = {"lstm": jaxrnn.lstm, "gru": jaxrnn.gru, "rnn": jaxrnn.rnn}[mode]
    return _jax_runners(lambda p, x: fn(p, x)[0], _state_dict(module), x)


def torch_runners(module, x: np.ndarray) -> dict[str, Runner]:
    import torch

    xt = torch.from_numpy(x)

    def step():
        module.zero_grad(set_to_none=True)
        out, _ = module(xt)
        out.sum().backward()

    def fwd():
        with torch.no_grad():
            module(xt)

    return {"step": step, "fwd": fwd}


def run_case(name: str, reps: int, warmup: int = 2) -> dict[str, dict[str, list[float]]]:
    """Milliseconds of every repetition ``{peer: {kind: [ms]}}`` for one case, interleaved."""
    import torch

    mode, b, t, i, h, layers, bi = CASES[name]
    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[mode]
    module = cls(i, h, layers, bidirectional=bi)
    x = np.random.default_rng(0).standard_normal((t, b, i)).astype(np.float32)
    peers = {
        "native": native_runners(mode, module, x),
        "torch": torch_runners(module, x),
        "xla": xla_runners(mode, module, x),
    }
    times: dict[str, dict[str, list[float]]] = {p: {"step": [], "fwd": []} for p in peers}
    for fns in peers.values():
        for kind in ("step", "fwd"):
            for _ in range(warmup):
                fns[kind]()
    for _ in range(reps):
        for kind in ("step", "fwd"):
            for p, fns in peers.items():
                start = time.perf_counter()
                fns[kind]()
                times[p][kind].append(1000 * (time.perf_counter() - start))
    return times


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def thread_check(reps: int = 7) -> None:
    """Threads the process holds, and each peer's standard-LSTM training step timed alone
    (a block of reps) vs interleaved with the other peers: a slowdown in the interleaved run
    means one runtime's threads get in the other's way (e.g. spinning after their call)."""
    import torch

    mode, b, t, i, h, layers, bi = CASES["std-lstm"]
    torch.manual_seed(0)
    module = torch.nn.LSTM(i, h, layers, bidirectional=bi)
    x = np.random.default_rng(0).standard_normal((t, b, i)).astype(np.float32)
    print(f"threads at start: {_threads()}")
    peers = {"native": native_runners(mode, module, x)["step"]}
    peers["native"]()
    print(f"after native: {_threads()}")
    peers["torch"] = torch_runners(module, x)["step"]
    peers["torch"]()
    print(f"after torch: {_threads()}")
    peers["xla"] = xla_runners(mode, module, x)["step"]
    peers["xla"]()
    print(f"after xla: {_threads()}")

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return 1000 * (time.perf_counter() - start)

    for _ in range(2):  # alternate the two schedules so slow drift in load hits both
        alone = {p: [timed(fn) for _ in range(reps)] for p, fn in peers.items()}
        mixed: dict[str, list[float]] = {p: [] for p in peers}
        for _ in range(reps):
            for p, fn in peers.items():
                mixed[p].append(timed(fn))
        for p in peers:
            a, m = statistics.median(alone[p]), statistics.median(mixed[p])
            print(
                f"{p:<7} alone {a:8.1f} ms (min {min(alone[p]):7.1f})  "
                f"interleaved {m:8.1f} ms (min {min(mixed[p]):7.1f})  ratio {m / a:5.2f}"
            )
    print(f"threads at end: {_threads()}, loadavg {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--cases", nargs="*", help="case names or prefixes (default: all)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--thread-check", action="store_true", help="threads, alone vs mixed")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if not jaxrnn_onednn.available():
        raise SystemExit(f"jaxrnn_onednn is not available: {jaxrnn_onednn.load_error()}")
    if args.thread_check:
        thread_check(args.reps)
        return
    print(
        f"oneDNN {jaxrnn_onednn.onednn_version()}, torch threads {args.threads}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
        f"loadavg {os.getloadavg()[0]:.1f}"
    )
    # Medians are the figure of merit; under load from other processes the minimum shows
    # what each peer does when it is not descheduled, so both ratios are printed.
    head = ("case", "kind", "native", "torch", "xla", "n/torch", "n/xla", "min n/t", "min n/x")
    print("{:<12} {:<5} {:>9} {:>9} {:>9} {:>8} {:>6} {:>8} {:>8}".format(*head))
    for name in CASES:
        if args.cases and not any(name.startswith(c) for c in args.cases):
            continue
        times = run_case(name, args.reps)
        for kind in ("step", "fwd"):
            n, t, x = (statistics.median(times[p][kind]) for p in ("native", "torch", "xla"))
            mn, mt, mx = (min(times[p][kind]) for p in ("native", "torch", "xla"))
            print(
                f"{name:<12} {kind:<5} {n:9.2f} {t:9.2f} {x:9.2f} {n / t:8.2f} {n / x:6.2f} "
                f"{mn / mt:8.2f} {mn / mx:8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
