"""Long memory: the adding problem at T = 1000, LSTM and GRU against the linear recurrences.

The adding problem (Hochreiter & Schmidhuber 1997), as in ``examples/gradients.py`` (whose
data generator this imports): ``T`` steps, each a value from ``U(0, 1)`` and a marker; two
steps are marked, one in each half, and the target is the sum of the two marked values. A
model is **solved** when its mean absolute error on held-out sequences falls below
``TOLERANCE = 0.04`` (predicting 1.0 whatever the input gives MAE ~ 0.33).

Every model gets about the same number of parameters (``--budget``, default that of a 64-unit
LSTM with its linear head, ~17.5k): the LSTM (chrono-initialised gate biases, as in
``examples/gradients.py``) and the GRU are one layer; minGRU, minLSTM, LRU and RG-LRU are
stacks of ``--layers`` (default 2) with a GELU between layers and the hidden size that comes
closest to the budget. The LRU's eigenvalues start on the ring ``0.9 <= |λ| <= 0.999``
(Orvieto et al. 2023's setting for long-range tasks). All run through ``backend="auto"``.

The models train round-robin in one process (one step of each in turn), so load from other
processes slows all of them alike, each until it is solved, its ``--steps`` are done or its
training time passes ``--time-budget`` seconds. Times are wall-clock seconds of training
steps only (the first step, which compiles, and the evaluations are excluded). Written:
``DIR/metrics.json`` (per model ``*_params``, ``*_solved_step``, ``*_solved_s``, ``*_mae``,
``*_steps``, ``*_train_s``), ``DIR/loss_vs_time.png`` (training MSE and held-out MAE against
wall-clock seconds) and ``DIR/plot.png`` (the same against steps).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn
from examples import common
from examples.gradients import adding_problem
from examples.gradients import init as init_gated
from jaxrnn.params import Layout, init_params
from jaxrnn.training import make_train_step, optimizer

TOLERANCE = 0.04  # held-out mean absolute error below this: solved
FAMILIES = ("lstm", "gru", "mingru", "minlstm", "lru", "rglru")
DEFAULT_MODELS = ("lstm", "gru", "mingru", "lru")
LRU_RING = (("r_min", 0.9), ("r_max", 0.999))


def layout(family: str, hidden: int, layers: int) -> Layout:
    """The recurrent stack of a model: 2 inputs (value, marker) to ``hidden`` units."""
    options = LRU_RING if family == "lru" else ()
    return Layout(family, 2, hidden, num_layers=layers, options=options)


def count(family: str, hidden: int, layers: int) -> int:
    """Parameters of the stack plus its linear head ``hidden -> 1``."""
    shapes = layout(family, hidden, layers).shapes().values()
    return sum(math.prod(s) for s in shapes) + hidden + 1


def size_for_budget(family: str, layers: int, budget: int) -> int:
    """The hidden size whose parameter count (with the head) is closest to ``budget``."""
    best, best_gap, hidden = 1, math.inf, 1
    while True:
        n = count(family, hidden, layers)
        if abs(n - budget) < best_gap:
            best, best_gap = hidden, abs(n - budget)
        if n > budget:
            return best
        hidden += 1


# --8<-- [start:model]
def init(family: str, key: jax.Array, hidden: int, layers: int, horizon: int) -> dict:
    """``{"rnn": PyTorch-named stack params, "head": (hidden + 1,)}`` for one model."""
    if family in ("lstm", "gru"):
        return init_gated(family, key, hidden, lstm_init="chrono", horizon=horizon)
    k1, k2 = jax.random.split(key)
    bound = 1.0 / math.sqrt(hidden)
    head = jax.random.uniform(k2, (hidden + 1,), minval=-bound, maxval=bound)
    stack = init_params(k1, layout(family, hidden, layers))
    per_layer = [
        {k.removesuffix(f"_l{i}") + "_l0": v for k, v in stack.items() if k.endswith(f"_l{i}")}
        for i in range(layers)
    ]
    return {"rnn": per_layer, "head": head}


def predict(family: str, params: dict, x: jax.Array) -> jax.Array:
    """``x (T, B, 2) -> (B,)``: the head applied to the top layer's output at the last step.

    The linear recurrences (``params["rnn"]`` a list of one-layer params) get a GELU between
    layers, as in their papers' blocks: a stack of LRUs with nothing between them would be one
    linear time-invariant filter, which cannot pick the marked values out.
    """
    if isinstance(params["rnn"], list):
        h = x
        for i, p in enumerate(params["rnn"]):
            h = jaxrnn.layer(family, p, h)[0]
            if i + 1 < len(params["rnn"]):
                h = jax.nn.gelu(h)
        y = h
    else:
        y, _ = jaxrnn.layer(family, params["rnn"], x)
    return y[-1] @ params["head"][:-1] + params["head"][-1]


# --8<-- [end:model]


def mae(predict_fn: Callable, params: dict, x: np.ndarray, y: np.ndarray, chunk: int) -> float:
    """Mean absolute error over held-out sequences, evaluated ``chunk`` at a time."""
    errs = [
        np.abs(np.asarray(predict_fn(params, x[:, i : i + chunk])) - y[i : i + chunk])
        for i in range(0, y.shape[0], chunk)
    ]
    return float(np.concatenate(errs).mean())


def plot_vs_time(history: dict[str, list[list[float]]], models: list[str], path: Any) -> None:
    """Training MSE and held-out MAE of every model against wall-clock seconds (log y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, m in enumerate(models):
        color = f"C{i}"
        loss = np.array(history.get(f"{m}_loss_t", [[0.0, np.nan]]))
        err = np.array(history.get(f"{m}_mae_t", [[0.0, np.nan]]))
        ax1.semilogy(loss[:, 0], loss[:, 1], color=color, label=m)
        ax2.semilogy(err[:, 0], err[:, 1], color=color, marker=".", label=m)
    ax1.set_title("training MSE (mean of each eval interval)")
    ax2.axhline(TOLERANCE, color="k", ls="--", lw=0.8, label="solved (0.04)")
    ax2.set_title("held-out MAE")
    for ax in (ax1, ax2):
        ax.set_xlabel("wall-clock training seconds")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Train the models of ``--models`` on the adding problem; returns the metrics dict."""
    p = common.parser("long_memory", __doc__, steps=4000)
    p.add_argument("--steps-len", type=int, default=None, help="sequence length T (1000)")
    p.add_argument("--models", nargs="+", choices=FAMILIES, default=None)
    p.add_argument("--budget", type=int, default=None, help="parameters per model (17,473)")
    p.add_argument("--layers", type=int, default=2, help="layers of the linear recurrences")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--time-budget", type=float, default=None, help="training s per model (120)")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--n-eval", type=int, default=None, help="held-out sequences (256)")
    args = p.parse_args(argv)
    q = args.quick
    t = common.choose(args.steps_len, quick=50, default=1000, is_quick=q)
    steps = common.choose(args.steps, quick=30, default=4000, is_quick=q)
    budget = common.choose(args.budget, quick=600, default=count("lstm", 64, 1), is_quick=q)
    batch = common.choose(args.batch_size, quick=16, default=64, is_quick=q)
    time_budget = common.choose(args.time_budget, quick=20.0, default=120.0, is_quick=q)
    eval_every = common.choose(args.eval_every, quick=10, default=25, is_quick=q)
    n_eval = common.choose(args.n_eval, quick=64, default=256, is_quick=q)
    models = list(args.models or DEFAULT_MODELS)
    if t < 2:
        raise ValueError(f"--steps-len must be at least 2 (one marker per half), got {t}")

    sizes = {m: (size_for_budget(m, 1 if m in ("lstm", "gru") else args.layers, budget),
                 1 if m in ("lstm", "gru") else args.layers) for m in models}  # fmt: skip
    keys = jax.random.split(jax.random.key(args.seed), len(models))
    params = {m: init(m, k, *sizes[m], t) for m, k in zip(models, keys, strict=True)}
    n_params = {m: common.count_params(params[m]) for m in models}
    test_x, test_y = adding_problem(np.random.default_rng([args.seed, 1]), n_eval, t)
    base = float(np.abs(1.0 - test_y).mean())

    schedule = optax.linear_schedule(0.0, args.lr, min(20, max(steps // 10, 1)))
    opt = optimizer(schedule, max_grad_norm=1.0)

    def train_step(family: str) -> Callable:
        def loss_fn(params, batch, key):
            x, target = batch
            return jnp.mean((predict(family, params, x) - target) ** 2), None

        return make_train_step(loss_fn, opt)

    steps_of = {m: train_step(m) for m in models}
    predict_of = {m: jax.jit(lambda p, x, m=m: predict(m, p, x)) for m in models}
    state = {m: (params[m], opt.init(params[m])) for m in models}
    run = common.Run("long_memory", args, keep=1)
    print(f"long_memory: adding problem T={t}, batch {batch}; predicting 1.0: MAE {base:.3f}")
    for m in models:
        print(f"  {m}: {sizes[m][1]} layer(s) x {sizes[m][0]} units, {n_params[m]:,} parameters")

    train_s = dict.fromkeys(models, 0.0)
    done = dict.fromkeys(models, 0)
    solved: dict[str, tuple[int, float] | None] = dict.fromkeys(models, None)
    last_mae = dict.fromkeys(models, math.nan)
    losses: dict[str, list[float]] = {m: [] for m in models}
    active = list(models)
    with run.progress(steps * len(models)) as bar:
        for i in range(steps):
            if not active:
                break
            xb, yb = adding_problem(np.random.default_rng([args.seed, 2, i]), batch, t)
            for m in list(active):
                start = time.perf_counter()
                new_p, new_o, loss, _ = steps_of[m](*state[m], (xb, yb), common.step_key(0, i))
                loss = float(loss)  # waits for the step
                if i > 0:  # step 0 compiles
                    train_s[m] += time.perf_counter() - start
                state[m] = (new_p, new_o)
                done[m] = i + 1
                losses[m].append(loss)
                bar.update(1, **{f"{m}_loss": loss})
                if (i + 1) % eval_every == 0 or train_s[m] >= time_budget or i + 1 == steps:
                    err = mae(predict_of[m], new_p, test_x, test_y, 128)
                    last_mae[m] = err
                    mean_loss = float(np.mean(losses[m]))
                    losses[m] = []
                    run.log(i + 1, **{f"{m}_loss": mean_loss, f"{m}_mae": err})
                    run.history.setdefault(f"{m}_loss_t", []).append([train_s[m], mean_loss])
                    run.history.setdefault(f"{m}_mae_t", []).append([train_s[m], err])
                    if err < TOLERANCE:
                        solved[m] = (i + 1, train_s[m])
                        bar.write(f"{m} solved at step {i + 1}, {train_s[m]:.1f} s, MAE {err:.4f}")
                        active.remove(m)
                    elif train_s[m] >= time_budget:
                        bar.write(f"{m}: time budget spent at step {i + 1}, MAE {err:.4f}")
                        active.remove(m)

    plot_vs_time(run.history, models, run.out / "loss_vs_time.png")
    metrics: dict[str, Any] = {"length": t, "tolerance": TOLERANCE, "baseline_mae": round(base, 4)}
    for m in models:
        metrics[f"{m}_params"] = n_params[m]
        metrics[f"{m}_hidden"] = sizes[m][0]
        metrics[f"{m}_layers"] = sizes[m][1]
        metrics[f"{m}_steps"] = done[m]
        metrics[f"{m}_train_s"] = round(train_s[m], 1)
        metrics[f"{m}_mae"] = round(last_mae[m], 4)
        metrics[f"{m}_solved_step"] = solved[m][0] if solved[m] else None
        metrics[f"{m}_solved_s"] = round(solved[m][1], 1) if solved[m] else None
    print("model    params  solved at (step, s)    final MAE")
    for m in models:
        s = solved[m]
        when = f"{s[0]:>6} {s[1]:>7.1f}" if s else "not solved in budget"
        print(f"{m:<8}{n_params[m]:>7}  {when:<21}  {last_mae[m]:.4f}")
    history = {k: v for k, v in run.history.items() if not k.endswith("_t")}
    run.history = history
    return run.finish(metrics, xlabel="step")


if __name__ == "__main__":
    main()
