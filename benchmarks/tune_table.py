"""The autotuning table of BENCHMARKS.md from one or two wisdom files of ``python -m jaxrnn.tune``.

``python -m benchmarks.tune_table RUN.json [EARLIER.json]``

For each tuned signature of ``RUN.json``: the winner and its time, what the built-in rules
run (``jaxrnn.kernels.by_rules`` on this machine) and how much slower that was, oneDNN's time
where it was timed and, with ``EARLIER.json`` (another run of the same grid on the same
machine), how much the earlier run's winner lost in this run's times (a table made then,
judged by a run made later), and a one-line summary of that. Nothing is timed here.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp

from jaxrnn import families, kernels
from jaxrnn.kernels import wisdom

_KEY = ("family", "batch", "steps", "hidden", "layers", "directions", "training")


def _key(entry: dict[str, Any]) -> tuple:
    return (*(entry[k] for k in _KEY), tuple(entry["features"]))


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def _shape(entry: dict[str, Any]) -> str:
    bi = " bi" if entry["directions"] == 2 else ""
    return (
        f"{entry['family']} B{entry['batch']} T{entry['steps']} I{entry['features'][0]} "
        f"H{entry['hidden']} L{entry['layers']}{bi}"
    )


def rules_pick(entry: dict[str, Any]) -> str:
    """The candidate (``"kernel/unroll"``) the built-in rules run for this entry's call."""
    call = kernels.Call(
        dtype=jnp.dtype(entry["dtype"]), batch=entry["batch"], hidden=entry["hidden"],
        steps=entry["steps"], features=tuple(entry["features"]), layers=entry["layers"],
        directions=entry["directions"], training=entry["training"],
    )  # fmt: skip
    choice = kernels.by_rules(families.get(entry["family"]), call)
    return wisdom.candidate(choice.kernel.name, int(choice.unroll) if choice.kernel.unrolled else 1)


def _loss(times: dict[str, float], name: str) -> float | None:
    return times[name] / min(times.values()) - 1 if name in times else None


def rows(run: dict[str, Any], earlier: dict[str, Any] | None = None) -> list[str]:
    """The Markdown table's lines."""
    before = {_key(e): e for e in earlier["entries"]} if earlier else {}
    head = "| shape | mode | winner (ms) | rules (ms, loss) | onednn/1 (ms, loss) |"
    rule = "|---|---|---|---|---|"
    if earlier:
        head += " earlier winner: loss here |"
        rule += "---|"
    out = [head, rule]
    for entry in run["entries"]:
        times = entry["times"]
        best = wisdom.pick(times)
        fast = times[best]
        ruled = rules_pick(entry)
        cells = [
            _shape(entry),
            "train" if entry["training"] else "infer",
            f"{best} {_ms(fast)}",
            f"{ruled} {_ms(times[ruled])} (+{_loss(times, ruled):.0%})" if ruled in times else "-",
            f"{_ms(times['onednn/1'])} (+{_loss(times, 'onednn/1'):.0%})"
            if "onednn/1" in times
            else "-",
        ]
        if earlier:
            old = before.get(_key(entry))
            won = None if old is None else wisdom.pick(old["times"])
            loss = None if won is None else _loss(times, won)
            cells.append("-" if loss is None else f"{won}: +{loss:.0%}")
        out.append("| " + " | ".join(cells) + " |")
    return out


def summary(run: dict[str, Any], earlier: dict[str, Any]) -> str:
    """How a table made by ``earlier`` fares by ``run``'s times: on how many rows its winner
    is within 3% and 10% of the fastest, the worst loss, and how many winners changed."""
    before = {_key(e): e for e in earlier["entries"]}
    losses, changed = [], 0
    for entry in run["entries"]:
        old = before.get(_key(entry))
        if old is None:
            continue
        then = wisdom.pick(old["times"])
        changed += then != wisdom.pick(entry["times"])
        loss = _loss(entry["times"], then)
        if loss is not None:
            losses.append(loss)
    if not losses:
        return "no signature of the earlier table was timed here"
    return (
        f"The earlier table's winner is within 3% of this run's fastest on "
        f"{sum(x <= 0.03 for x in losses)} of {len(losses)} rows, within 10% on "
        f"{sum(x <= 0.10 for x in losses)}, worst +{max(losses):.0%}; the winner changed on "
        f"{changed} rows."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("run", type=Path, help="a wisdom file written by python -m jaxrnn.tune")
    parser.add_argument("earlier", type=Path, nargs="?", help="an earlier run's wisdom file")
    args = parser.parse_args(argv)
    run = json.loads(args.run.read_text())
    earlier = json.loads(args.earlier.read_text()) if args.earlier else None
    print("\n".join(rows(run, earlier)))
    if earlier:
        print("\n" + summary(run, earlier))


if __name__ == "__main__":
    main()
