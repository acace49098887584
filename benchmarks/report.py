"""Markdown table, charts and the BENCHMARKS.md update for a benchmark report."""

from __future__ import annotations

from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
KIND_NAMES = {"step": "train step", "fwd": "forward"}


def _peers(report: dict) -> list[str]:
    seen: list[str] = []
    for case in report["cases"]:
        seen += [p for p in case["results"] if p not in seen]
    return seen


def _cell(r: dict | None) -> str:
    if r is None:
        return "—"
    return f"{r['median_ms']:.1f} ({r['min_ms']:.1f}–{r['max_ms']:.1f})"


def markdown(report: dict) -> str:
    """The report as Markdown: machine, per-case table, scaling and memory."""
    m = report["meta"]
    load0, load1 = m["loadavg_start"], m.get("loadavg_end", m["loadavg_start"])
    lines = [
        f"Run {m['date']} on **{m['cpu']}**, {m['cores']} cores, backend `{m['backend']}`; "
        f"Python {m['python']}, jax {m['jax']} (jaxlib {m['jaxlib']}), flax {m['flax']}, "
        f"torch {m['torch']}, numpy {m['numpy']}"
        + (f", XLA_FLAGS=`{m['xla_flags']}`" if m["xla_flags"] else "")
        + ".",
        "",
        f"Load average (1/5/15 min) at start {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, "
        f"at end {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}. "
        f"{report['reps']} timed repetitions per peer, round-robin, after {report['warmup']} "
        "warm-up calls; milliseconds as median (min–max). Ratio = jaxrnn median / peer "
        "median (< 1: jaxrnn faster)."
        + (" **Quick run: tiny shapes, numbers meaningless.**" if report["quick"] else ""),
        "",
    ]
    peers = _peers(report)
    others = [p for p in peers if p != "jaxrnn"]
    if report["cases"]:
        # bf16 matmuls are a different precision: their own ratio to torch, not jaxrnn's
        bf16 = "jaxrnn-bf16" in peers and "torch" in peers
        head = ["case", "pass", *peers, *[f"jaxrnn / {p}" for p in others]]
        head += ["jaxrnn-bf16 / torch"] if bf16 else []
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for case in report["cases"]:
            for kind in ("step", "fwd"):
                res = case["results"]
                ratios = case["ratios"].get(kind, {})
                row = [case["label"], KIND_NAMES[kind]]
                row += [_cell(res.get(p, {}).get(kind)) for p in peers]
                row += [f"{ratios[p]:.2f}" if p in ratios else "—" for p in others]
                if bf16:
                    a, b = res.get("jaxrnn-bf16", {}).get(kind), res.get("torch", {}).get(kind)
                    row.append(f"{a['median_ms'] / b['median_ms']:.2f}" if a and b else "—")
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    if "scaling" in report:
        s = report["scaling"]
        sh = s["shape"]
        lines += [
            f"Training step vs T (LSTM, B={sh['batch']}, I={sh['input_size']}, "
            f"H={sh['hidden_size']}, 1 layer), median ms; slope of log(time) vs log(T) "
            "(1 = linear):",
            "",
            "| T | " + " | ".join(s["step_ms"]) + " |",
            "|" + "---|" * (len(s["step_ms"]) + 1),
        ]
        for k, t in enumerate(s["steps"]):
            lines.append(
                f"| {t} | " + " | ".join(f"{v[k]:.1f}" for v in s["step_ms"].values()) + " |"
            )
        lines.append(
            "| slope | " + " | ".join(f"{v:.2f}" for v in s["loglog_slope"].values()) + " |"
        )
        lines.append("")
    if "memory" in report:
        mem = report["memory"]
        sh = mem["shape"]
        lines += [
            f"Memory of one training step (LSTM, B={sh['batch']}, T={sh['steps']}, "
            f"I={sh['input_size']}, H={sh['hidden_size']}): XLA's compiled temp buffer size "
            "(`jit(...).lower(...).compile().memory_analysis()`), deterministic:",
            "",
            "| remat | temp MiB | arguments MiB | outputs MiB |",
            "|---|---|---|---|",
        ]
        for label, r in mem["rows"].items():
            mib = [r[k] / 2**20 for k in ("temp_bytes", "argument_bytes", "output_bytes")]
            lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in mib) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_ratios(report: dict, path: Path) -> None:
    """Per case, each peer's median time relative to torch (or the first peer), step and fwd."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    peers = _peers(report)
    if not report["cases"] or not peers:
        return
    base = "torch" if "torch" in peers else peers[0]
    labels = [c["name"] for c in report["cases"]]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.9 * len(labels)), 7), sharex=True)
    width = 0.8 / len(peers)
    for ax, kind in zip(axes, ("step", "fwd"), strict=True):
        for k, peer in enumerate(peers):
            vals = []
            for c in report["cases"]:
                r, b = c["results"].get(peer), c["results"].get(base)
                vals.append(r[kind]["median_ms"] / b[kind]["median_ms"] if r and b else np.nan)
            ax.bar(np.arange(len(labels)) + k * width, vals, width, label=peer)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_ylabel(f"{KIND_NAMES[kind]} time / {base}")
        ax.set_yscale("log")
    axes[0].legend(ncol=3, fontsize=8)
    axes[1].set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, rotation=45, ha="right")
    fig.suptitle("Median time relative to " + base + " (lower is faster)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_scaling(report: dict, path: Path) -> None:
    """Step time vs T (log-log, with a linear guide) and the remat memory bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if "scaling" in report:
        s = report["scaling"]
        for peer, ms in s["step_ms"].items():
            axes[0].loglog(
                s["steps"], ms, "o-", label=f"{peer} (slope {s['loglog_slope'][peer]:.2f})"
            )
        first = next(iter(s["step_ms"].values()))
        guide = [first[0] * t / s["steps"][0] for t in s["steps"]]
        axes[0].loglog(s["steps"], guide, "k:", label="linear")
        axes[0].set_xlabel("T")
        axes[0].set_ylabel("train step, ms")
        axes[0].legend(fontsize=8)
        axes[0].set_title("LSTM training step vs sequence length")
    if "memory" in report:
        rows = report["memory"]["rows"]
        axes[1].bar(range(len(rows)), [r["temp_bytes"] / 2**20 for r in rows.values()])
        axes[1].set_xticks(range(len(rows)), list(rows), fontsize=7)
        axes[1].set_ylabel("XLA temp memory, MiB")
        axes[1].set_title(f"One training step, T={report['memory']['shape']['steps']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_benchmarks_md(path: Path, table: str) -> None:
    """Replace the text between the results markers of BENCHMARKS.md (append if missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
