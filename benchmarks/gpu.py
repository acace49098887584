"""The GPU table: ``python -m benchmarks.gpu [--out DIR] [--cases ...] [--quick]``.

Times jaxrnn's kernels beside ``torch.nn`` on cuDNN, ``jax.experimental.rnn`` (cuDNN through
JAX) and ``flax.linen.RNN`` on one GPU, for the shapes users train (the standard LSTM, GRU and
Elman cases of :mod:`benchmarks.run`, a big and two long LSTMs), and measures each one's
forward error against float64 (torch on the CPU, same weights). Every contender of a case is
compiled first (in parallel threads: XLA compiles release the GIL), warmed up, then timed
round-robin in this one process; medians over ``--reps``. Ratios are contender / torch.

Contenders: ``jaxrnn`` (``backend="auto"``, what a user gets), ``fused-uN`` (the fused XLA
loop at ``unroll=N``: the sweep ``auto``'s GPU rule is chosen from), ``scan``, ``bf16``
(``matmul_dtype=bfloat16``), ``cudnn`` (the optional ``jaxrnn_cudnn`` plugin, when it loads),
``torch`` (cuDNN; TF32 as torch defaults), ``jax.experimental.rnn`` (LSTM only) and
``flax.linen``. Default precision everywhere (TF32 matmuls on Ampere and newer), as users run.

Writes ``gpu.json`` and ``gpu.md`` to ``--out``. Runs on the CPU too (tiny shapes with
``--quick``), so the harness is tested in CI; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from benchmarks import peers as P

Runner = Callable[[], Any]
UNROLLS = (1, 4, 16)

CASES = (
    P.Case("long-lstm", "lstm", 8, 2048, 32, 128, 1),
    P.Case("big-lstm", "lstm", 128, 256, 512, 1024, 2),
    P.Case("standard-lstm", "lstm", 32, 128, 64, 256, 2),
    P.Case("standard-lstm-bi", "lstm", 32, 128, 64, 256, 2, bidirectional=True),
    P.Case("standard-gru", "gru", 32, 128, 64, 256, 2),
    P.Case("standard-rnn", "rnn", 32, 128, 64, 256, 2),
    P.Case("long-rnn", "rnn", 8, 2048, 32, 128, 1),
    P.Case("mid-lstm", "lstm", 8, 1024, 256, 256, 1),
)
QUICK = (
    P.Case("standard-lstm", "lstm", 2, 6, 3, 5, 2),
    P.Case("standard-gru-bi", "gru", 2, 6, 3, 5, 1, bidirectional=True),
)


def _cudnn_here() -> bool:
    """Whether the cuDNN plugin's kernel can run here (installed, and a GPU backend)."""
    return "cudnn" in jaxrnn.kernels.names() and jax.default_backend() == "gpu"


def _compile(fn: Callable, *args: Any) -> Runner:
    compiled = jax.jit(fn).lower(*args).compile()
    return lambda: jax.block_until_ready(compiled(*args))


def _jaxrnn_fns(case: P.Case, params: Any, x: jax.Array, **options: Any) -> dict[str, tuple]:
    fn = P._FUNCS[case.mode]

    def fwd(p, x):
        return fn(p, x, **options)[0]

    step = jax.value_and_grad(lambda p, x: fwd(p, x).sum())
    return {"step": (step, params, x), "fwd": (fwd, params, x)}


def _jax_specs(
    case: P.Case, module: Any, x: np.ndarray, skip: tuple[str, ...] = ()
) -> dict[str, dict[str, tuple]]:
    """Every JAX contender of ``case`` as ``{name: {kind: (fn, *args)}}``, not yet compiled
    (but those named in ``skip``)."""
    params = jax.device_put(jaxrnn.interop.from_torch(module))
    xj = jnp.asarray(x)
    specs = {"jaxrnn": _jaxrnn_fns(case, params, xj)}
    for u in UNROLLS:
        specs[f"fused-u{u}"] = _jaxrnn_fns(case, params, xj, backend="fused", unroll=u)
    specs["scan"] = _jaxrnn_fns(case, params, xj, backend="scan")
    specs["bf16"] = _jaxrnn_fns(case, params, xj, matmul_dtype=jnp.bfloat16)
    if _cudnn_here():
        specs["cudnn"] = _jaxrnn_fns(case, params, xj, backend="cudnn")
    if case.mode == "lstm" and jax.default_backend() == "gpu":
        built = P.jax_cudnn_peer(case, module, x)  # lazily jitted: compiled on warm-up
        if built is not None:
            specs["jax.experimental.rnn"] = {k: (None, f) for k, f in built.items()}
    built = P.linen_peer(case, module, x)
    specs["flax.linen"] = {k: (None, f) for k, f in built.items()}
    return {name: spec for name, spec in specs.items() if name not in skip}


def _build(specs: dict[str, dict[str, tuple]], workers: int) -> tuple[dict, dict]:
    """Compile every spec in a thread pool; returns runners and the errors of those that failed."""
    runners: dict[str, dict[str, Runner]] = {n: {} for n in specs}
    errors: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = {}
        for name, kinds in specs.items():
            for kind, (fn, *args) in kinds.items():
                if fn is None:  # already a runner
                    runners[name][kind] = args[0]
                else:
                    futures[pool.submit(_compile, fn, *args)] = (name, kind)
        for fut in concurrent.futures.as_completed(futures):
            name, kind = futures[fut]
            try:
                runners[name][kind] = fut.result()
            except Exception as e:  # a contender that cannot run this case is reported
                errors[f"{name} {kind}"] = f"{type(e).__name__}: {str(e)[:300]}"
    return {n: r for n, r in runners.items() if len(r) == 2}, errors


def _errors_vs_float64(case: P.Case, module: Any, x: np.ndarray, params: Any) -> dict:
    """Max abs forward error of each precision against torch float64 on the CPU."""
    import torch

    ref_mod = module.to("cpu").double()
    with torch.no_grad():
        ref = ref_mod(torch.from_numpy(x).double())[0].numpy()
    module.float()
    fn = P._FUNCS[case.mode]
    out = {}
    variants: dict[str, dict] = {"jaxrnn": {}, "bf16": {"matmul_dtype": jnp.bfloat16}}
    if _cudnn_here():
        variants["cudnn"] = {"backend": "cudnn"}
    xj = jnp.asarray(x)
    for name, opts in variants.items():
        try:
            y = np.asarray(jax.jit(lambda p, x, o=opts: fn(p, x, **o)[0])(params, xj))
            out[name] = float(np.abs(y - ref).max())
        except Exception as e:
            out[name] = f"{type(e).__name__}: {str(e)[:200]}"
        with jax.default_matmul_precision("highest"):
            try:
                y = np.asarray(jax.jit(lambda p, x, o=opts: fn(p, x, **o)[0])(params, xj))
                out[f"{name} highest"] = float(np.abs(y - ref).max())
            except Exception as e:
                out[f"{name} highest"] = f"{type(e).__name__}: {str(e)[:200]}"
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.no_grad():
        y = module.to(dev)(torch.from_numpy(x).to(dev))[0].cpu().numpy()
    out["torch"] = float(np.abs(y - ref).max())
    return out


def run_case(
    case: P.Case, reps: int, workers: int, errors: bool, skip: tuple[str, ...] = ()
) -> dict:
    x = P.inputs(case)
    module = P.torch_module(case)
    t0 = time.perf_counter()
    runners, failed = _build(_jax_specs(case, module, x, skip), workers)
    compile_s = time.perf_counter() - t0
    dev = "cuda" if P._torch().cuda.is_available() else "cpu"
    runners["torch"] = P.torch_peer(case, module, x, dev)
    for fns in runners.values():  # warm-up (also compiles the lazily jitted peers)
        for _ in range(2):
            fns["step"]()
            fns["fwd"]()
    times: dict[str, dict[str, list[float]]] = {n: {"step": [], "fwd": []} for n in runners}
    for _ in range(reps):
        for name, fns in runners.items():
            for kind in ("step", "fwd"):
                start = time.perf_counter()
                fns[kind]()
                times[name][kind].append(1e3 * (time.perf_counter() - start))
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    ratios = {
        n: {k: med[n][k] / med["torch"][k] for k in ("step", "fwd")} for n in med if n != "torch"
    }
    row = {"name": case.name, "label": case.label(), "compile_s": compile_s, "median_ms": med,
           "times_ms": times, "ratio_to_torch": ratios, "failed": failed}  # fmt: skip
    if errors:
        params = jax.device_put(jaxrnn.interop.from_torch(module.to("cpu")))
        row["max_abs_error_vs_float64"] = _errors_vs_float64(case, module, x, params)
    module.to("cpu")
    return row


def remat_memory(quick: bool) -> dict:
    """XLA temp bytes of an LSTM train step at long T, with and without ``remat``."""
    t, b, i, h = (64, 2, 3, 4) if quick else (8192, 8, 32, 128)
    case = P.Case("memory", "lstm", b, t, i, h)
    params = jaxrnn.interop.from_torch(P.torch_module(case))
    x = jnp.asarray(P.inputs(case))
    out = {}
    for label, remat in (("none", None), ("remat=True", True)):

        def loss(p, x, remat=remat):
            return jaxrnn.lstm(p, x, remat=remat)[0].sum()

        mem = jax.jit(jax.grad(loss)).lower(params, x).compile().memory_analysis()
        out[label] = None if mem is None else int(mem.temp_size_in_bytes)
    return {"shape": vars(case), "temp_bytes": out}


def machine() -> dict:
    import flax

    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backend": jax.default_backend(),
        "devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": importlib.metadata.version("jaxlib"),
        "flax": flax.__version__,
        "cores": os.cpu_count(),
        "matmul_precision": str(jax.config.jax_default_matmul_precision),  # pyright: ignore[reportAttributeAccessIssue],
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["torch_cudnn"] = torch.backends.cudnn.version()
            info["torch_cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
    except ImportError:
        info["torch"] = None
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        info["nvidia_smi"] = smi.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = None
    if _cudnn_here():
        import jaxrnn_cudnn  # pyright: ignore[reportMissingImports]

        info["jaxrnn_cudnn"] = jaxrnn_cudnn.cudnn_version()
    return info


def markdown(report: dict) -> str:
    """One table per pass: median ms and (ratio to torch); then the errors."""
    m = report["meta"]
    names: list[str] = []
    for case in report["cases"]:
        names += [n for n in case["median_ms"] if n not in names]
    lines = [
        f"Run {m['date']} on {m.get('nvidia_smi') or m['devices']}; jax {m['jax']}, "
        f"torch {m.get('torch')} (cuDNN {m.get('torch_cudnn')}), flax {m['flax']}; "
        f"{report['reps']} round-robin repetitions after 2 warm-ups, median ms "
        "(ratio to torch)." + (" **Quick run: numbers meaningless.**" if report["quick"] else ""),
        "",
    ]
    for kind, title in (("step", "train step"), ("fwd", "forward")):
        lines += [f"**{title}**", "", "| case | " + " | ".join(names) + " |"]
        lines.append("|---|" + "---:|" * len(names))
        for case in report["cases"]:
            cells = []
            for n in names:
                ms = case["median_ms"].get(n, {}).get(kind)
                r = case["ratio_to_torch"].get(n, {}).get(kind)
                cells.append("—" if ms is None else f"{ms:.2f}" + (f" ({r:.2f})" if r else ""))
            lines.append(f"| {case['label']} | " + " | ".join(cells) + " |")
        lines.append("")
    err_names: list[str] = []
    for case in report["cases"]:
        err_names += [n for n in case.get("max_abs_error_vs_float64", {}) if n not in err_names]
    if err_names:
        lines += ["**forward max abs error vs float64** (torch, CPU, same weights)", ""]
        lines += ["| case | " + " | ".join(err_names) + " |", "|---|" + "---:|" * len(err_names)]
        for case in report["cases"]:
            errs = case.get("max_abs_error_vs_float64", {})
            cells = [
                f"{errs[n]:.1e}" if isinstance(errs.get(n), float) else str(errs.get(n, "—"))[:40]
                for n in err_names
            ]
            lines.append(f"| {case['label']} | " + " | ".join(cells) + " |")
        lines.append("")
    for case in report["cases"]:
        for k, v in case["failed"].items():
            lines.append(f"- {case['name']}: `{k}` failed: {v}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/gpu"))
    parser.add_argument("--cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--no-errors", action="store_true", help="skip the float64 comparison")
    parser.add_argument("--quick", action="store_true", help="tiny shapes: checks the harness")
    parser.add_argument("--skip", nargs="*", default=[], help="contenders to leave out")
    args = parser.parse_args(argv)
    pool = QUICK if args.quick else CASES
    known = [c.name for c in pool]
    unknown = [c for c in args.cases or [] if c not in known]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {known}")
    selected = [c for c in pool if not args.cases or c.name in args.cases]
    reps = 2 if args.quick else args.reps
    report: dict[str, Any] = {"meta": machine(), "quick": args.quick, "reps": reps, "cases": []}
    args.out.mkdir(parents=True, exist_ok=True)
    for case in selected:
        print(f"[gpu] {case.label()}", file=sys.stderr, flush=True)
        report["cases"].append(
            run_case(case, reps, args.workers, not args.no_errors, tuple(args.skip))
        )
        (args.out / "gpu.json").write_text(json.dumps(report, indent=1))  # partial results
        (args.out / "gpu.md").write_text(markdown(report))
    report["remat_memory"] = remat_memory(args.quick)
    (args.out / "gpu.json").write_text(json.dumps(report, indent=1))
    table = markdown(report)
    (args.out / "gpu.md").write_text(table)
    print(table)
    return report


if __name__ == "__main__":
    main()
