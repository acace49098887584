"""Measure which kernel and ``unroll`` run fastest on this machine, and keep the answer.

``python -m jaxrnn.tune`` times every (kernel, ``unroll``) candidate that can run each shape
of a standard grid (the LSTM, GRU and Elman cases of ``benchmarks.run``: standard uni- and
bidirectional, small, long; training and inference) and any shape named with ``--shape``,
and writes the times to the wisdom table (:mod:`jaxrnn.kernels.wisdom`) that
``backend="auto"`` and ``unroll="auto"`` read from then on. It prints, for each shape, the
winner next to what the built-in rules (:mod:`jaxrnn.kernels.rules`) would have run.

Measuring is the only thing here; the choice itself lives in :func:`jaxrnn.kernels.choose`.
A table changes which kernel runs, and so results change at the rounding level only (every
kernel computes the same recurrence); with a given table the choice is deterministic.

Examples:
    Tune the standard grid, then a shape of your own (``family:B,T,I,H[,L][,bi][,dtype]``):

    ```
    python -m jaxrnn.tune
    python -m jaxrnn.tune --grid none --shape lstm:B64,T512,I128,H512,L2,bi --mode train
    ```

    From Python:

    >>> import jaxrnn.tune as tune
    >>> shape = tune.Shape("gru", batch=2, steps=3, input_size=2, hidden_size=4)
    >>> shape.label()
    'gru B2 T3 I2 H4 L1'
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn import families, functional, kernels
from jaxrnn.kernels import wisdom
from jaxrnn.params import Layout, init_params

MODES = {"train": (True,), "infer": (False,), "both": (True, False)}


@dataclasses.dataclass(frozen=True)
class Shape:
    """One layer shape to tune: family, ``x (T, B, I)``, hidden size, layers, directions."""

    family: str
    batch: int
    steps: int
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    dtype: str = "float32"

    def label(self) -> str:
        bi = " bi" if self.bidirectional else ""
        dtype = "" if self.dtype == "float32" else f" {self.dtype}"
        return (
            f"{self.family} B{self.batch} T{self.steps} I{self.input_size} H{self.hidden_size} "
            f"L{self.num_layers}{bi}{dtype}"
        )

    @classmethod
    def parse(cls, text: str) -> Shape:
        """``"lstm:B32,T128,I64,H256,L2,bi"`` (``L``, ``bi`` and a dtype are optional)."""
        family, sep, rest = text.partition(":")
        sizes: dict[str, int] = {}
        bidirectional, dtype = False, "float32"
        for part in rest.split(",") if sep else []:
            part = part.strip()
            if match := re.fullmatch(r"([BTIHL])(\d+)", part):
                sizes[match[1]] = int(match[2])
            elif part == "bi":
                bidirectional = True
            elif part in ("float32", "bfloat16", "float16", "float64"):
                dtype = part
            else:
                raise ValueError(f"unknown part {part!r} in --shape {text!r}")
        if not sep or set(sizes) < {"B", "T", "I", "H"} or min(sizes.values()) < 1:
            raise ValueError(
                f"--shape takes family:B<batch>,T<steps>,I<input>,H<hidden>[,L<layers>][,bi]"
                f"[,dtype] with positive sizes, e.g. lstm:B32,T128,I64,H256,L2; got {text!r}"
            )
        families.get(family)  # a clear error for an unknown family
        return cls(
            family, sizes["B"], sizes["T"], sizes["I"], sizes["H"], sizes.get("L", 1),
            bidirectional, dtype,
        )  # fmt: skip


def standard_grid() -> list[Shape]:
    """The rows of ``benchmarks.run``: standard (uni, bi), small and long, for LSTM, GRU, RNN."""
    out = []
    for family in ("lstm", "gru", "rnn_tanh"):
        out.append(Shape(family, 32, 128, 64, 256, 2))
        out.append(Shape(family, 32, 128, 64, 256, 2, bidirectional=True))
        out.append(Shape(family, 8, 64, 32, 64, 1))
        out.append(Shape(family, 8, 2048, 32, 128, 1))
    return out


GRIDS = {"standard": standard_grid, "none": list}


def _setup(shape: Shape) -> tuple[Any, dict[str, Any], Any, kernels.Call]:
    """The family, parameters, input and the :class:`jaxrnn.kernels.Call` a layer builds."""
    spec = families.get(shape.family)
    layout = Layout(
        shape.family, shape.input_size, shape.hidden_size, shape.num_layers,
        bidirectional=shape.bidirectional,
    )  # fmt: skip
    dtype = jnp.dtype(shape.dtype)
    params = init_params(jax.random.key(0), layout, dtype=dtype)
    x = jax.random.normal(jax.random.key(1), (shape.steps, shape.batch, shape.input_size), dtype)
    state = spec.state_shapes(layout.sizes(0), (shape.batch,))
    call = kernels.Call(
        dtype=dtype, batch=shape.batch, hidden=state[0][-1], steps=shape.steps,
        features=(shape.input_size,), layers=shape.num_layers,
        directions=2 if shape.bidirectional else 1,
    )  # fmt: skip
    return spec, params, x, call


def _compiled(family: str, params, x, name: str, unroll: int, training: bool):
    def forward(params, x):
        out, _ = functional.layer(family, params, x, backend=name, unroll=unroll)
        return jnp.sum(out.real if jnp.iscomplexobj(out) else out)

    f = jax.grad(forward, argnums=(0, 1)) if training else forward
    compiled = jax.jit(f).lower(params, x).compile()
    return lambda: compiled(params, x)


@dataclasses.dataclass(frozen=True)
class Result:
    """One tuned signature: the seconds of each candidate (``"kernel/unroll"``), the winner,
    and what the built-in rules run."""

    shape: Shape
    training: bool
    times: dict[str, float]
    best: str
    rule: str

    def rule_loss(self) -> float | None:
        """How much slower the rules' pick is than the winner (0.1 = 10%), if it was timed."""
        if self.rule not in self.times:
            return None
        return self.times[self.rule] / self.times[self.best] - 1.0


def tune(
    shape: Shape,
    *,
    training: bool = True,
    reps: int = 5,
    only: Sequence[str] | None = None,
    record: bool = True,
) -> Result:
    """Time every candidate for ``shape`` (``only``: these kernels) and record the times.

    Each candidate is compiled first, then all are timed round-robin ``reps`` times (a
    warm-up call each, then the median), so a noisy neighbour slows them alike.
    """
    spec, params, x, call = _setup(shape)
    call = call._replace(training=training)
    runs = {}
    for name, unroll in kernels.candidates(spec, call):
        if only is None or name in only:
            runs[wisdom.candidate(name, unroll)] = _compiled(
                shape.family, params, x, name, unroll, training
            )
    if not runs:
        raise ValueError(f"no kernel among {only} runs {shape.label()}")
    times = wisdom.measure(runs, reps=reps)
    if record:
        wisdom.record(spec.name, call, jax.default_backend(), times)
    rule = kernels.by_rules(spec, call)
    rule_name = wisdom.candidate(rule.kernel.name, int(rule.unroll) if rule.kernel.unrolled else 1)
    return Result(shape, training, times, wisdom.pick(times), rule_name)


def _row(result: Result) -> str:
    loss = result.rule_loss()
    ranked = sorted(result.times, key=lambda c: result.times[c])
    shown = "  ".join(f"{c} {result.times[c] * 1e3:.3g}" for c in ranked)
    vs = "not timed" if loss is None else f"{loss * 100:+.0f}%"
    mode = "train" if result.training else "infer"
    return (
        f"{result.shape.label():34s} {mode}  best {result.best:9s} rules {result.rule:9s} "
        f"({vs})  | ms: {shown}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python -m jaxrnn.tune --help``."""
    parser = argparse.ArgumentParser(
        prog="python -m jaxrnn.tune",
        description="Time every (kernel, unroll) candidate on this machine and write the "
        "winners to the wisdom table that backend='auto' reads.",
    )
    parser.add_argument("--grid", choices=sorted(GRIDS), default="standard")
    parser.add_argument(
        "--shape", action="append", default=[], type=Shape.parse,
        help="family:B<batch>,T<steps>,I<input>,H<hidden>[,L<layers>][,bi][,dtype] "
        "(repeatable), e.g. lstm:B32,T128,I64,H256,L2,bi",
    )  # fmt: skip
    parser.add_argument("--family", action="append", default=None, help="grid rows of these")
    parser.add_argument("--mode", choices=sorted(MODES), default="both")
    parser.add_argument("--kernels", default=None, help="comma-separated: time only these")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--platform", default=None, help="the jax platform to tune (cpu, gpu, tpu); default: "
        "jax's default backend. The table records it with the device kind."
    )  # fmt: skip
    parser.add_argument("--wisdom", type=Path, default=None, help="the table's path")
    parser.add_argument("--dry-run", action="store_true", help="time and print, write nothing")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")
    if args.platform is not None:
        jax.config.update("jax_platforms", args.platform)
    if args.wisdom is not None:
        import os

        os.environ["JAXRNN_WISDOM"] = str(args.wisdom)
    shapes = [*GRIDS[args.grid](), *args.shape]
    if args.family:
        unknown = set(args.family) - set(families.names())
        if unknown:
            parser.error(f"unknown --family {sorted(unknown)}; known: {families.names()}")
        shapes = [s for s in shapes if s.family in args.family]
    only = None if args.kernels is None else args.kernels.split(",")
    if only is not None and set(only) - set(kernels.names()):
        parser.error(f"unknown --kernels {sorted(set(only) - set(kernels.names()))}")
    platform = jax.default_backend()
    env = wisdom.environment(platform)
    print(f"tuning on {env['platform']} ({env['device']}), {env['versions']}")
    print(f"wisdom: {'(dry run)' if args.dry_run else wisdom.path()}")
    start = time.perf_counter()
    for shape in shapes:
        for training in MODES[args.mode]:
            result = tune(
                shape, training=training, reps=args.reps, only=only, record=not args.dry_run
            )
            print(_row(result), flush=True)
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
