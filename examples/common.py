"""What every example shares: flags, output folder, progress bar, history, checkpoints, plots.

An example is a ``main(argv=None) -> dict`` that returns its final metrics::

    from examples import common

    def main(argv=None):
        args = common.parser("snips", __doc__, epochs=20).parse_args(argv)
        epochs = common.choose(args.epochs, quick=2, default=20, is_quick=args.quick)
        run = common.Run("snips", args)            # makes args.out; fresh unless --resume
        state = {"params": params, "opt_state": opt.init(params)}
        state, done = run.restore(state)           # (state, 0) unless --resume found one
        with run.progress(total=epochs * per_epoch, initial=done * per_epoch) as bar:
            for epoch in range(done, epochs):
                order = common.permutation(args.seed, epoch, n)     # same on resume
                for i, batch in enumerate(...):
                    key = common.step_key(args.seed, epoch * per_epoch + i)
                    p, o, loss, aux = step(state["params"], state["opt_state"], batch, key)
                    ...
                    bar.update(1, loss=loss)       # running mean of loss in the bar
                run.log(epoch + 1, loss=bar.mean("loss"), val_acc=acc)   # learning curves
                run.save(epoch + 1, state)         # orbax checkpoint + history.json
        return run.finish({"intent_acc": ...})     # prints, writes metrics.json + plot.png

API:

* ``parser(name, description, *, epochs=None, steps=None)``: ``argparse`` with ``--quick``,
  ``--out DIR`` (default ``runs/NAME``), ``--resume``, ``--seed`` (default 0) and
  ``--epochs N`` (if ``epochs`` is given; that is its default shown in ``--help``) and/or
  ``--steps N``. Both default to ``None`` in ``args`` so :func:`choose` can tell "not given".
* ``choose(value, *, quick, default, is_quick)``: the flag's value if given, else the
  ``--quick`` or the normal default.
* ``permutation(seed, epoch, n)`` / ``step_key(seed, step)``: the data order and the dropout
  key as functions of (seed, epoch/step) only, so a resumed run sees the same ones as an
  uninterrupted run.
* ``count_params(tree) -> int``.
* ``bucket_batches(lengths, buckets, batch_size, rng=None)``: yields ``(T, idx)``, batches
  of example indices whose lengths fit bucket ``T`` (the first bucket >= each length), so a
  batch pads to ``T`` and only ``len(buckets)`` shapes get compiled; ``rng`` shuffles within
  buckets and the order of the batches. ``pad_rows(idx, batch_size)`` fills a short last
  batch with copies of its first row and returns ``(rows, weights)`` (weights 0 on fillers).
* ``Run(name, args, *, keep=2)``: ``.out`` (a ``Path``); ``.restore(state) -> (state, step)``;
  ``.save(step, state)`` (checkpoint under ``out/checkpoint`` plus ``out/history.json``);
  ``.log(x, **values)`` appends to the learning curves (``.history[name] = [[x, v], ...]``);
  ``.progress(total, initial=0, unit="step") -> Progress``; ``.plot(extra=(), ...)``
  writes ``out/plot.png``; ``.finish(metrics, extra=(), table=None)`` adds ``wall_s`` and
  ``cpu_s``, writes ``out/metrics.json`` (plus the plot), prints one line ``NAME: k=v ...``
  and returns the dict.
* ``Progress``: a tqdm bar; ``.update(n=1, **values)`` keeps a running mean of each value
  (a host sync, so call it every step or every few steps as cost allows) and shows it;
  ``.mean(name)`` / ``.reset_means()``; ``.write(text)`` prints above the bar.

``extra`` plot panels are callables ``f(ax)`` drawing into one matplotlib axes each (the
forecast, a confusion matrix, ...); the learning curves come first: keys containing
``loss`` on one panel, every other logged key on a second.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxrnn.training import restore_checkpoint, save_checkpoint

PyTree = Any
Panel = Callable[[Any], None]


def parser(
    name: str, description: str | None, *, epochs: int | None = None, steps: int | None = None
) -> argparse.ArgumentParser:
    """The shared flags; ``epochs`` / ``steps`` add ``--epochs`` / ``--steps`` with that default."""
    p = argparse.ArgumentParser(
        prog=f"python -m examples.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="tiny settings, under a minute")
    p.add_argument(
        "--out", default=os.path.join("runs", name), help="output folder (default: %(default)s)"
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--seed", type=int, default=0, help="seed of all randomness (default: 0)")
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=None, help=f"epochs (default: {epochs})")
    if steps is not None:
        p.add_argument("--steps", type=int, default=None, help=f"train steps (default: {steps})")
    return p


def choose(value: Any, *, quick: Any, default: Any, is_quick: bool) -> Any:
    """``value`` if the flag was given, else the ``--quick`` default or the normal one."""
    if value is not None:
        return value
    return quick if is_quick else default


def permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of ``n`` examples in ``epoch``: a function of ``(seed, epoch)`` only."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def step_key(seed: int, step: int) -> jax.Array:
    """The PRNG key of train step ``step`` (dropout): a function of ``(seed, step)`` only."""
    return jax.random.fold_in(jax.random.key(seed), step)


def bucket_batches(
    lengths: np.ndarray,
    buckets: Iterable[int],
    batch_size: int,
    rng: np.random.Generator | None = None,
):
    """Yield ``(T, idx)``: batches of at most ``batch_size`` indices whose lengths are <= ``T``.

    Each example goes to the first bucket ``T`` that holds it. With ``rng`` the examples are
    shuffled within buckets and the batches across buckets; without it the order is fixed.
    """
    buckets = sorted(buckets)
    lengths = np.asarray(lengths)
    if lengths.size and lengths.max() > buckets[-1]:
        raise ValueError(f"a length of {lengths.max()} exceeds the largest bucket {buckets[-1]}")
    order = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
    which = np.searchsorted(buckets, lengths[order])
    groups = []
    for b, t in enumerate(buckets):
        idx = order[which == b]
        groups += [(t, idx[i : i + batch_size]) for i in range(0, len(idx), batch_size)]
    if rng is not None:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    yield from groups


def pad_rows(idx: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, weights)``: ``idx`` filled up to ``batch_size`` rows (fixed shapes), weight 0."""
    fill = batch_size - len(idx)
    rows = np.concatenate([idx, np.full(fill, idx[0], dtype=np.asarray(idx).dtype)])
    return rows, (np.arange(batch_size) < len(idx)).astype(np.float32)


def count_params(tree: PyTree) -> int:
    """Number of scalars in a pytree of arrays."""
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))


def _number(v: Any) -> Any:
    """A JSON-friendly Python scalar for a NumPy / JAX scalar (other values unchanged)."""
    if isinstance(v, np.generic | jax.Array | np.ndarray) and np.ndim(v) == 0:
        v = np.asarray(v).item()
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


class Progress:
    """A tqdm bar that shows the running mean of what is passed to :meth:`update`."""

    def __init__(self, total: int, *, initial: int = 0, desc: str = "", unit: str = "step"):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def update(self, n: int = 1, **values: Any) -> None:
        for k, v in values.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v)
            self._counts[k] = self._counts.get(k, 0) + 1
        if values:
            self.bar.set_postfix({k: _fmt(self.mean(k)) for k in self._sums}, refresh=False)
        self.bar.update(n)

    def mean(self, name: str) -> float:
        """Mean of ``name`` since the last :meth:`reset_means` (nan if none)."""
        return self._sums[name] / self._counts[name] if self._counts.get(name) else math.nan

    def reset_means(self) -> None:
        self._sums.clear()
        self._counts.clear()

    def write(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Run:
    """One run of an example: its output folder, history, checkpoints, plot and metrics."""

    def __init__(self, name: str, args: argparse.Namespace, *, keep: int = 2):
        self.name = name
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.out / "checkpoint"
        self.keep = keep
        self.history: dict[str, list[list[float]]] = {}
        if not args.resume:
            # A fresh run must not pick up (or be mixed with) an older run's checkpoints.
            shutil.rmtree(self.checkpoints, ignore_errors=True)
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    # -- checkpoints --------------------------------------------------------------------

    def restore(self, state: PyTree) -> tuple[PyTree, int]:
        """The newest checkpoint's ``(state, step)`` with ``--resume``, else ``(state, 0)``.

        ``state`` gives the structure, shapes and dtypes. The history is cut back to that step.
        """
        if not self.args.resume:
            return state, 0
        restored = restore_checkpoint(self.checkpoints, state)
        if restored is None:
            print(f"{self.name}: no checkpoint in {self.checkpoints} to resume; starting fresh")
            return state, 0
        state, step = restored
        path = self.out / "history.json"
        if path.exists():
            saved = json.loads(path.read_text())
            self.history = {k: [p for p in v if p[0] <= step] for k, v in saved.items()}
        print(f"{self.name}: resumed from step {step} in {self.checkpoints}")
        return state, step

    def save(self, step: int, state: PyTree) -> None:
        """Checkpoint ``state`` as ``step`` (orbax, newest ``keep`` kept) and the history."""
        save_checkpoint(self.checkpoints, step, state, keep=self.keep)
        (self.out / "history.json").write_text(json.dumps(self.history))

    # -- curves, progress, results -----------------------------------------------------

    def log(self, x: float, **values: Any) -> None:
        """Add one point ``(x, value)`` to each named learning curve."""
        for k, v in values.items():
            self.history.setdefault(k, []).append([_number(x), float(v)])

    def progress(self, total: int, *, initial: int = 0, unit: str = "step") -> Progress:
        return Progress(total, initial=initial, desc=self.name, unit=unit)

    def plot(self, extra: Iterable[Panel] = (), *, xlabel: str = "epoch") -> Path:
        """Learning curves (+ ``extra`` panels) side by side in ``out/plot.png``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        losses = [k for k in self.history if "loss" in k]
        others = [k for k in self.history if "loss" not in k]
        extra = list(extra)
        groups = [g for g in (losses, others) if g]
        n = max(len(groups) + len(extra), 1)
        fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
        for ax, keys in zip(axes[0], groups, strict=False):
            for k in keys:
                xs, ys = zip(*self.history[k], strict=True)
                ax.plot(xs, ys, marker="." if len(xs) < 50 else None, label=k)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
            ax.legend()
        for ax, draw in zip(axes[0][len(groups) :], extra, strict=False):
            draw(ax)
        fig.suptitle(self.name)
        fig.tight_layout()
        path = self.out / "plot.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def finish(
        self,
        metrics: Mapping[str, Any],
        *,
        extra: Iterable[Panel] = (),
        xlabel: str = "epoch",
        table: str | None = None,
    ) -> dict[str, Any]:
        """Write ``metrics.json`` (+ ``wall_s``, ``cpu_s``) and the plot; print the final line."""
        result = {k: _number(v) for k, v in metrics.items()}
        result["wall_s"] = round(time.perf_counter() - self._wall, 1)
        result["cpu_s"] = round(time.process_time() - self._cpu, 1)
        (self.out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        (self.out / "history.json").write_text(json.dumps(self.history))
        self.plot(extra, xlabel=xlabel)
        if table:
            print(table)
        print(f"{self.name}: " + " ".join(f"{k}={_fmt(v)}" for k, v in result.items()))
        return result
