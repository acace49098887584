"""The linear recurrences vs LSTM and GRU through the public API: time vs T, memory, table, plot.

``python -m benchmarks.families_table [--steps 128 1024 4096 16384] [--reps 3] [--quick]``

Wraps :mod:`benchmarks.families` (which times the kernels one level down) at the level a user
calls: ``jaxrnn.layer(family, params, x, backend=...)`` for minGRU, minLSTM, LRU and RG-LRU with
``backend="auto"`` and ``"parallel"`` (``jax.lax.associative_scan``), ``jaxrnn.lstm`` and
``jaxrnn.gru`` (auto: the fused loops), and ``torch.nn.LSTM`` (on cuDNN when a GPU is present).
One layer, ``B=8``, input = hidden = 256, float32. A "train step" is ``jax.grad`` of
``sum(output)`` with respect to the parameters, jitted (torch: ``zero_grad``, forward,
``backward``); "forward" is one jitted forward (torch: under ``no_grad``). For each ``T`` every
contender is compiled and warmed up once, then all run round-robin (rep 1: A, B, C, ...; rep 2:
...) so load from other processes hits them alike; medians are reported. Memory is XLA's
compiled temp buffer of the train step
(``jax.jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes``).

``--skip-slow-above T`` drops the LSTM, GRU and torch (seconds per call) above that length.
Writes ``benchmarks/results/families.json``, the table into ``benchmarks/results/families.md``
(between markers, the rest of the file kept) and ``benchmarks/results/families.png`` (time
vs T, log-log). Nothing here is a test: no time is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from benchmarks.families import BATCH, SIZE
from jaxrnn.params import Layout, init_params

RESULTS = Path(__file__).resolve().parent / "results"
BEGIN, END = "<!-- families-table:begin -->", "<!-- families-table:end -->"
LINEAR = ("mingru", "minlstm", "lru", "rglru")
SLOW = ("lstm", "gru", "torch lstm")
BASE = "lstm"
Runner = tuple[Callable[[], Any], Callable[[], Any], int | None]  # step, forward, temp bytes


def _jax_runner(family: str, backend: str, steps: int, batch: int, size: int) -> Runner:
    """Compiled train step and forward of one jaxrnn layer, and the step's temp bytes."""
    params = init_params(jax.random.key(0), Layout(family, size, size))
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.standard_normal((steps, batch, size)), jnp.float32)

    def forward(p, x):
        return jaxrnn.layer(family, p, x, backend=backend)[0]

    def loss(p, x):
        return forward(p, x).sum()

    step = jax.jit(jax.grad(loss)).lower(params, xs).compile()
    fwd = jax.jit(forward).lower(params, xs).compile()
    memory = step.memory_analysis()
    temp = None if memory is None else int(memory.temp_size_in_bytes)
    return (lambda: jax.block_until_ready(step(params, xs)),
            lambda: jax.block_until_ready(fwd(params, xs)), temp)  # fmt: skip


def _torch_runner(steps: int, batch: int, size: int) -> Runner:
    """``torch.nn.LSTM``'s train step (forward + backward of the sum) and forward."""
    import torch

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # cuDNN beside a GPU backend
    lstm = torch.nn.LSTM(size, size).to(device)
    xs = torch.randn(steps, batch, size, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step() -> None:
        lstm.zero_grad()
        lstm(xs)[0].sum().backward()
        sync()

    def forward() -> None:
        with torch.no_grad():
            lstm(xs)
        sync()

    return step, forward, None


def contenders(steps: int, batch: int, size: int, slow: bool) -> dict[str, Runner]:
    """Every contender at one length, compiled: ``{name: (step, forward, temp bytes)}``."""
    out: dict[str, Runner] = {}
    if slow:
        out["lstm"] = _jax_runner("lstm", "auto", steps, batch, size)
        out["gru"] = _jax_runner("gru", "auto", steps, batch, size)
    for family in LINEAR:
        out[family] = _jax_runner(family, "auto", steps, batch, size)
        out[f"{family} parallel"] = _jax_runner(family, "parallel", steps, batch, size)
    if slow:
        with contextlib.suppress(ImportError):
            out["torch lstm"] = _torch_runner(steps, batch, size)
    return out


def measure(steps: int, reps: int, batch: int, size: int, slow: bool) -> dict[str, dict]:
    """Medians (s) of the train step and the forward of every contender, round-robin."""
    runners = contenders(steps, batch, size, slow)
    for step, fwd, _ in runners.values():  # warm-up
        step()
        fwd()
    times: dict[str, dict[str, list[float]]] = {n: {"step": [], "fwd": []} for n in runners}
    for _ in range(reps):
        for name, (step, fwd, _) in runners.items():
            for kind, f in (("step", step), ("fwd", fwd)):
                start = time.perf_counter()
                f()
                times[name][kind].append(time.perf_counter() - start)
    return {
        name: {
            "step_s": statistics.median(t["step"]),
            "fwd_s": statistics.median(t["fwd"]),
            "step_all": t["step"],
            "fwd_all": t["fwd"],
            "temp_bytes": runners[name][2],
        }
        for name, t in times.items()
    }


def markdown(report: dict) -> str:
    """One table per kind: median ms and the ratio to jaxrnn's LSTM at the same T."""
    names: list[str] = []
    for row in report["results"].values():
        names += [n for n in row if n not in names]
    lines = []
    for kind, title in (("step_s", "train step"), ("fwd_s", "forward")):
        lines += [f"**{title}**, median ms (x jaxrnn LSTM at the same T):", ""]
        lines += ["| contender | " + " | ".join(f"T={t}" for t in report["results"]) + " |"]
        lines += ["| --- |" + " ---: |" * len(report["results"])]
        for name in names:
            cells = []
            for row in report["results"].values():
                if name not in row:
                    cells.append("—")
                    continue
                ms = 1e3 * row[name][kind]
                base = row.get(BASE)
                ratio = f" ({row[name][kind] / base[kind]:.2f}x)" if base and name != BASE else ""
                cells.append(f"{ms:.1f}{ratio}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["**train step temp memory** (XLA, MiB):", ""]
    lines += ["| contender | " + " | ".join(f"T={t}" for t in report["results"]) + " |"]
    lines += ["| --- |" + " ---: |" * len(report["results"])]
    for name in names:
        cells = []
        for row in report["results"].values():
            b = row.get(name, {}).get("temp_bytes")
            cells.append("—" if b is None else f"{b / 2**20:.1f}")
        if any(c != "—" for c in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    """Train step and forward median time vs T, log-log, one line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    for row in report["results"].values():
        names += [n for n in row if n not in names]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (kind, title) in zip(
        axes, (("step_s", "train step"), ("fwd_s", "forward")), strict=True
    ):
        for i, name in enumerate(names):
            pts = [(int(t), r[name][kind]) for t, r in report["results"].items() if name in r]
            ts, ys = zip(*pts, strict=True)
            style = "--" if "parallel" in name else ":" if "torch" in name else "-"
            color = "k" if "torch" in name else f"C{i % 10}"
            ax.loglog(ts, ys, style, marker="o", color=color, label=name)
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("median seconds")
        ax.set_title(f"{title}, B={report['batch']}, I=H={report['size']}, 1 layer, float32")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_md(report: dict, path: Path) -> None:
    """Put the tables between the markers of ``path`` (at its top if they are missing)."""
    m = report["meta"]
    block = (
        f"{BEGIN}\n`python -m benchmarks.families_table` ({m['date']}, {m['cores']} cores, "
        f"load average {m['load_start'][0]:.1f} at the start and {m['load_end'][0]:.1f} at "
        f"the end; {report['reps']} round-robin repetitions after one warm-up; jax "
        f"{jax.__version__}, backend `{m['backend']}`; "
        f"torch on {m['torch_threads']} thread(s)).\n\n" + markdown(report) + END
    )
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = block + "\n\n" + text
    path.write_text(text)


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; returns (and writes) the report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, nargs="+", default=[128, 1024, 4096, 16384])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--skip-slow-above", type=int, default=4096)
    p.add_argument("--quick", action="store_true", help="tiny shapes: checks the harness")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--torch-threads", type=int, default=1,
        help="1 by default: on a loaded box torch's OpenMP team of 2 spins and runs ~100x slower",
    )  # fmt: skip
    args = p.parse_args(argv)
    batch, size = (2, 8) if args.quick else (BATCH, SIZE)
    steps = [8, 16] if args.quick else args.steps
    reps = 1 if args.quick else args.reps
    try:
        import torch

        torch.set_num_threads(args.torch_threads)
    except ImportError:
        pass
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "backend": jax.default_backend(),
        "load_start": os.getloadavg(),
        "torch_threads": args.torch_threads,
    }
    results: dict[str, dict] = {}
    for t in steps:
        slow = t <= args.skip_slow_above
        results[str(t)] = measure(t, reps, batch, size, slow)
        row = results[str(t)]
        base = row.get(BASE)
        for name, r in row.items():
            ratio = f"{r['step_s'] / base['step_s']:.3f}x" if base else "-"
            temp = (r["temp_bytes"] or 0) / 2**20
            print(f"T={t:>6} {name:<18} step {r['step_s']:.4f} s ({ratio}) "
                  f"fwd {r['fwd_s']:.4f} s temp {temp:.1f} MiB", flush=True)  # fmt: skip
    meta["load_end"] = os.getloadavg()
    report = {"meta": meta, "batch": batch, "size": size, "reps": reps, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "families.json").write_text(json.dumps(report, indent=1))
    write_md(report, args.out / "families.md")
    plot(report, args.out / "families.png")
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
