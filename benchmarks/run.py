"""Benchmark jaxrnn against torch.nn and Flax: ``python -m benchmarks.run [--quick] [--write-md]``.

Every case builds all peers on the same input in this one process, warms each up (compile
excluded), then times them round-robin (every peer once a round, ``reps`` rounds) so load
from other processes hits all peers alike; each round visits them in a new (seeded) order,
and each timed call follows a short pause (:func:`round_robin` says why). Reported: median
and min-max per peer and the ratio ``jaxrnn / peer`` of medians (< 1 means jaxrnn is faster).
Writes ``results.json``, ``results.md``, ``ratios.png`` and ``scaling.png`` to ``--out``;
``--write-md`` also puts the table into BENCHMARKS.md. Nothing here is a test: no time is
asserted anywhere.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import peers as P
from benchmarks.report import markdown, plot_ratios, plot_scaling, write_benchmarks_md
from jaxrnn.kernels import wisdom

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("step", "fwd")
DEFAULT_PEERS = (
    "jaxrnn", "jaxrnn-fused", "jaxrnn-onednn", "jaxrnn-scan", "jaxrnn-bf16", "torch",
    "flax.linen", "flax.nnx",
    "jax.experimental.rnn",
)  # fmt: skip


def cases(quick: bool) -> list[P.Case]:
    """Standard (uni/bi), small latency-bound and long cases for each of LSTM, GRU, RNN."""
    if quick:
        std, small, long_ = (2, 6, 3, 5, 2), (2, 4, 3, 4, 1), (2, 16, 3, 4, 1)
    else:
        std, small, long_ = (32, 128, 64, 256, 2), (8, 64, 32, 64, 1), (8, 2048, 32, 128, 1)
    out = []
    for mode in ("lstm", "gru", "rnn"):
        out.append(P.Case(f"standard-{mode}", mode, *std))
        out.append(P.Case(f"standard-{mode}-bi", mode, *std, bidirectional=True))
    for mode in ("lstm", "gru", "rnn"):
        out.append(P.Case(f"small-{mode}", mode, *small))
    for mode in ("lstm", "gru", "rnn"):
        out.append(P.Case(f"long-{mode}", mode, *long_))
    return out


def timed(fn) -> tuple[float, float]:
    """Wall and process CPU seconds of one call (CPU time shows how many cores it kept busy)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def summarize(times: list[tuple[float, float]]) -> dict:
    ms = [1000 * wall for wall, _ in times]
    return {
        "median_ms": statistics.median(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "times_ms": ms,
        "cpu_median_ms": statistics.median(1000 * cpu for _, cpu in times),
    }


def round_robin(runners: dict[str, dict], reps: int, warmup: int, kinds=KINDS) -> dict:
    """Time every (peer, kind) ``reps`` times, interleaved, each round in a new seeded order
    and each timed call after the tuner's pause (``wisdom.COOLDOWN_S``, which says why: OpenMP
    threads spinning on after torch's and oneDNN's calls); the first ``warmup`` calls excluded."""
    for fns in runners.values():
        for kind in kinds:
            for _ in range(warmup):
                fns[kind]()
    times = {p: {k: [] for k in kinds} for p in runners}
    slots = [(peer, kind) for peer in runners for kind in kinds]
    order = random.Random(0)
    for _ in range(reps):
        order.shuffle(slots)
        for peer, kind in slots:
            time.sleep(wisdom.COOLDOWN_S)
            times[peer][kind].append(timed(runners[peer][kind]))
    return {p: {k: summarize(v) for k, v in ts.items()} for p, ts in times.items()}


def run_case(case: P.Case, peer_names, reps: int, warmup: int) -> dict:
    x = P.inputs(case)
    module = P.torch_module(case)
    runners = {}
    for name in peer_names:
        built = P.build(name, case, module, x)
        if built is not None:
            runners[name] = built
    results = round_robin(runners, reps, warmup)
    ratios = {}
    if "jaxrnn" in results:
        for kind in KINDS:
            ours = results["jaxrnn"][kind]["median_ms"]
            ratios[kind] = {
                p: ours / r[kind]["median_ms"] for p, r in results.items() if p != "jaxrnn"
            }
    return {"name": case.name, "label": case.label(), "case": vars(case), "results": results,
            "ratios": ratios}  # fmt: skip


def run_scaling(quick: bool, peer_names, reps: int, warmup: int) -> dict:
    """Training-step time of a 1-layer LSTM as T grows; the log-log slope should be ~1."""
    lengths = (8, 16) if quick else (128, 256, 512, 1024, 2048, 4096, 8192)
    b, i, h = (2, 3, 4) if quick else (8, 32, 128)
    names = [p for p in ("jaxrnn", "torch", "flax.linen") if p in peer_names]
    points = {p: [] for p in names}
    for t in lengths:
        case = P.Case(f"scaling-T{t}", "lstm", b, t, i, h)
        x, module = P.inputs(case), P.torch_module(case)
        runners = {p: P.build(p, case, module, x) for p in names}
        res = round_robin(runners, reps, warmup, kinds=("step",))
        for p in names:
            points[p].append(res[p]["step"]["median_ms"])
    slopes = {p: float(np.polyfit(np.log(lengths), np.log(v), 1)[0]) for p, v in points.items()}
    return {"shape": {"batch": b, "input_size": i, "hidden_size": h}, "steps": list(lengths),
            "step_ms": points, "loglog_slope": slopes}  # fmt: skip


def run_memory(quick: bool) -> dict:
    """XLA's compiled temp memory of one LSTM training step, with and without ``remat``."""
    import jaxrnn

    t = 64 if quick else 8192
    b, i, h = (2, 3, 4) if quick else (8, 32, 128)
    case = P.Case("memory", "lstm", b, t, i, h)
    params = jaxrnn.interop.from_torch(P.torch_module(case))
    x = jnp.asarray(P.inputs(case))
    rows = {}
    chunk = 16 if quick else 256
    for label, remat in (("none", None), ("remat=True (chunk ceil(sqrt(T)))", True),
                         (f"remat={chunk}", chunk)):  # fmt: skip

        def loss(p, x, remat=remat):
            return jaxrnn.lstm(p, x, remat=remat)[0].sum()

        compiled = jax.jit(jax.grad(loss)).lower(params, x).compile()
        mem = compiled.memory_analysis()
        rows[label] = {"temp_bytes": int(mem.temp_size_in_bytes),
                       "argument_bytes": int(mem.argument_size_in_bytes),
                       "output_bytes": int(mem.output_size_in_bytes)}  # fmt: skip
    return {"shape": vars(case), "rows": rows}


def machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import flax
    import jaxlib

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "torch": torch_version,
        "numpy": np.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 reps (smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--cases", nargs="*", help="case names or prefixes (default: all)")
    parser.add_argument("--peers", nargs="*", default=list(DEFAULT_PEERS))
    parser.add_argument("--reps", type=int, help="timed repetitions per peer (default 7; 2 quick)")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--write-md", action="store_true", help="update BENCHMARKS.md's table")
    args = parser.parse_args(argv)
    unknown = [p for p in args.peers if p not in P.PEERS]
    if unknown:
        parser.error(f"unknown peers {unknown}; choose from {sorted(P.PEERS)}")
    reps = args.reps or (2 if args.quick else 7)
    warmup = 1 if args.quick else 2
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        args.peers = [p for p in args.peers if p != "torch"]

    selected = [
        c for c in cases(args.quick)
        if not args.cases or any(c.name == s or c.name.startswith(s) for s in args.cases)
    ]  # fmt: skip
    report = {"meta": machine(), "quick": args.quick, "reps": reps, "warmup": warmup}
    report["meta"]["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
    report["meta"]["loadavg_start"] = list(os.getloadavg())
    report["cases"] = []
    for case in selected:
        print(f"[bench] {case.label()}", file=sys.stderr, flush=True)
        report["cases"].append(run_case(case, args.peers, reps, warmup))
    if not args.no_scaling:
        print("[bench] scaling with T", file=sys.stderr, flush=True)
        report["scaling"] = run_scaling(args.quick, args.peers, max(3, reps // 2), 1)
    if not args.no_memory:
        print("[bench] memory", file=sys.stderr, flush=True)
        report["memory"] = run_memory(args.quick)
    report["meta"]["loadavg_end"] = list(os.getloadavg())

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=1))
    table = markdown(report)
    (args.out / "results.md").write_text(table)
    plot_ratios(report, args.out / "ratios.png")
    if "scaling" in report or "memory" in report:
        plot_scaling(report, args.out / "scaling.png")
    if args.write_md:
        write_benchmarks_md(ROOT / "BENCHMARKS.md", table)
    print(table)
    return report


if __name__ == "__main__":
    main()
