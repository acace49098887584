"""Airline passengers: forecast the last 24 months (1959-1960) of Box & Jenkins' series G.

The LSTM models the year-over-year log growth ``d_t = log y_t - log y_{t-12}`` (seasonal
differencing of the log: what is left is a slowly moving growth rate), standardized with
the training months' mean and spread, plus the month as ``(sin, cos)``. It is trained the way
it is used: from every origin it reads 24 months, then forecasts the next 12 in closed
loop (its own predictions fed back), and the loss is the error of those forecasts. An
ensemble of 5 seeded LSTMs (vmapped; their mean is the forecast) is trained on the origins
whose targets end by Dec 1958 for a fixed 600 steps, then reads everything up to Dec 1958
and forecasts the 24 held-out months: no held-out value is ever seen.
``y_t = y_{t-12} * exp(d_t)`` turns growths back into passengers.

Baseline: the seasonal-naive forecast of the same 24 months (each month = the same month of
the last observed year, 1958, as Hyndman & Athanasopoulos define it for a 24-month horizon).
Built on the functional API: ``jaxrnn.lstm`` for teacher forcing, ``jaxrnn.cells.lstm_cell``
one step at a time for the closed loop.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from examples import common
from jaxrnn.cells import lstm_cell
from jaxrnn.params import Layout, init_params, layer_params
from jaxrnn.training import make_train_step, optimizer

DATA = Path(__file__).resolve().parent / "data" / "airline-passengers.csv"
HORIZON, SEASON = 24, 12


def load(path: Path = DATA) -> np.ndarray:
    """The 144 monthly totals (thousands), Jan 1949 - Dec 1960."""
    rows = path.read_text().strip().splitlines()[1:]
    y = np.array([float(r.split(",")[1]) for r in rows])
    if y.shape != (144,):
        raise ValueError(f"{path}: expected 144 months, got {y.shape[0]}")
    return y


def features(d: np.ndarray, months: np.ndarray) -> np.ndarray:
    """``(T,) growth, (T,) month index -> (T, 3)``: growth and the month as a point on a circle."""
    angle = 2 * np.pi * (months % SEASON) / SEASON
    return np.stack([d, np.sin(angle), np.cos(angle)], -1).astype(np.float32)


# --8<-- [start:model]
def init(key: jax.Array, hidden: int) -> dict:
    k1, k2 = jax.random.split(key)
    lstm = init_params(k1, Layout("lstm", 3, hidden))
    head = {"w": jax.random.normal(k2, (hidden, 1)) * 0.01, "b": jnp.zeros(1)}
    return {"lstm": lstm, "head": head}


def predict_next(params: dict, x: jax.Array) -> jax.Array:
    """Teacher-forced one-step predictions: ``x (B, T, 3) -> (B, T)`` (d of the next month)."""
    y, _ = jaxrnn.lstm(params["lstm"], x, batch_first=True)
    return (y @ params["head"]["w"] + params["head"]["b"])[..., 0]


def rollout(params: dict, x: jax.Array, months: jax.Array) -> jax.Array:
    """Read the history ``x (T, 3)``, then predict ``len(months)`` steps feeding back each one."""
    cell = layer_params(params["lstm"], 0, reverse=False)
    hidden = cell["weight_hh"].shape[1]
    carry = (jnp.zeros((1, hidden)), jnp.zeros((1, hidden)))

    def read(carry, xt):
        carry, h = lstm_cell(cell, carry, xt[None])
        return carry, h

    carry, hs = jax.lax.scan(read, carry, x)
    first = (hs[-1] @ params["head"]["w"] + params["head"]["b"])[0, 0]

    def step(state, month):
        carry, d = state
        angle = 2 * jnp.pi * (month % SEASON) / SEASON
        xt = jnp.stack([d, jnp.sin(angle), jnp.cos(angle)])[None]
        carry, h = lstm_cell(cell, carry, xt)
        nxt = (h @ params["head"]["w"] + params["head"]["b"])[0, 0]
        return (carry, nxt), d

    _, ds = jax.lax.scan(step, (carry, first), months)
    return ds


# --8<-- [end:model]


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def loss_fn(params, batch, key):
    """MSE of the ensemble's growth predictions; ``batch = (windows, future months, targets)``.

    With ``future`` None: one step ahead at every window step (teacher forcing); else a
    closed-loop forecast of the ``future`` months after each window.
    """
    x, future, t = batch
    if future is None:
        pred = jax.vmap(predict_next, (0, None))(params, x)  # (members, B, T)
    else:
        many = jax.vmap(rollout, (None, 0, 0))  # over origins
        pred = jax.vmap(many, (0, None, None))(params, x, future)  # (members, B, h)
    return jnp.mean((pred - t) ** 2), {}


@functools.cache  # one compiled step per setting, shared by every main() in a process
def train_step(lr: float):
    opt = optimizer(lr, max_grad_norm=1.0)
    return opt, make_train_step(loss_fn, opt)


@jax.jit
def ensemble_growth(params: dict, x: jax.Array, months: jax.Array) -> jax.Array:
    """The members' mean closed-loop forecast (scaled growth) of ``months`` after ``x``."""
    return jax.vmap(rollout, (0, None, None))(params, x, months).mean(0)


def to_passengers(y: np.ndarray, upto: int, ds: np.ndarray) -> np.ndarray:
    """Passengers after month ``upto - 1`` from predicted growths: ``y_t = y_{t-12} exp(d_t)``."""
    history = list(y[:upto])
    for d in ds:  # forecasts stand in for the months not yet known
        history.append(history[-SEASON] * np.exp(d))
    return np.array(history[upto:])


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("airline", __doc__, steps=600)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--members", type=int, default=5, help="ensemble of seeded LSTMs (mean)")
    p.add_argument("--window", type=int, default=24, help="months read before forecasting")
    p.add_argument(
        "--closed-loop", type=int, default=12,
        help="train on forecasts this many months ahead (own outputs fed back); 0: one step",
    )  # fmt: skip
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-every", type=int, default=25, help="steps between logs/checkpoints")
    p.add_argument(
        "--early-stop", action="store_true",
        help="hold out 1958 and keep the step that forecasts it best (1958 is an atypical, "
        "flat year: this picks near-constant growth)",
    )  # fmt: skip
    args = p.parse_args(argv)
    steps = common.choose(args.steps, quick=200, default=600, is_quick=args.quick)

    y = load()
    logy = np.log(y)
    d = logy[SEASON:] - logy[:-SEASON]  # d[i] is the growth of month i + 12
    months = np.arange(SEASON, len(y))
    n_test = len(y) - HORIZON  # the first held-out month (Jan 1959)
    n_val = n_test - SEASON  # 1958: the validation year with --early-stop
    # growth values trained on: months before 1958 with --early-stop, else before 1959
    fit = (n_val if args.early_stop else n_test) - SEASON
    mean, std = d[:fit].mean(), d[:fit].std()
    x_all = jnp.asarray(features((d - mean) / std, months))
    w, h = args.window, args.closed_loop
    if h:  # origin i reads growths i..i+w-1, then forecasts the next h in closed loop
        starts = np.arange(fit - w - h + 1)
        windows = jnp.stack([x_all[s : s + w] for s in starts])
        future = jnp.stack([jnp.asarray(months[s + w : s + w + h]) for s in starts])
        targets = jnp.stack([x_all[s + w : s + w + h, 0] for s in starts])
    else:  # teacher forcing: window i reads growths i..i+w-1, predicts i+1..i+w
        starts = np.arange(fit - w)
        windows = jnp.stack([x_all[s : s + w] for s in starts])
        future = None
        targets = jnp.stack([x_all[s + 1 : s + w + 1, 0] for s in starts])

    def forecast(params, upto, horizon):
        ds = ensemble_growth(params, x_all[: upto - SEASON], jnp.arange(upto, upto + horizon))
        return to_passengers(y, upto, np.asarray(ds) * std + mean)

    opt, step = train_step(args.lr)
    keys = jax.random.split(jax.random.key(args.seed), args.members)
    params = jax.vmap(init, (0, None))(keys, args.hidden)
    run = common.Run("airline", args)
    state = {
        "params": params,
        "opt_state": opt.init(params),
        "best_params": params,
        "best_val": jnp.array(np.inf),
        "best_step": jnp.array(0),
    }
    state, done = run.restore(state)
    with run.progress(steps, initial=done) as bar:
        for i in range(done, steps):
            params, opt_state, loss, _ = step(
                state["params"],
                state["opt_state"],
                (windows, future, targets),
                common.step_key(args.seed, i),
            )
            state = {**state, "params": params, "opt_state": opt_state}
            bar.update(1, loss=loss)
            if (i + 1) % args.eval_every == 0 or i + 1 == steps:
                curves = {"train_loss": bar.mean("loss")}
                if args.early_stop:
                    val = rmse(forecast(params, n_val, SEASON), y[n_val:n_test])
                    curves["val_rmse"] = val
                    if val < float(state["best_val"]):
                        state = {**state, "best_params": params, "best_val": jnp.array(val),
                                 "best_step": jnp.array(i + 1)}  # fmt: skip
                run.log(i + 1, **curves)
                bar.reset_means()
                run.save(i + 1, state)

    final = state["best_params"] if args.early_stop else state["params"]
    predicted = forecast(final, n_test, HORIZON)
    truth = y[n_test:]
    naive = np.tile(y[n_test - SEASON : n_test], HORIZON // SEASON)
    metrics = {
        "rmse": round(rmse(predicted, truth), 2),
        "rmse_seasonal_naive": round(rmse(naive, truth), 2),
        "mape": round(float(np.mean(np.abs(predicted - truth) / truth) * 100), 2),
        "steps": steps,
        "params": common.count_params(state["params"]),
    }
    if args.early_stop:
        metrics |= {"val_rmse": round(float(state["best_val"]), 2),
                    "best_step": int(state["best_step"])}  # fmt: skip

    def draw(ax):
        t = 1949 + np.arange(len(y)) / 12
        ax.plot(t[:n_test], y[:n_test], color="k", label="history")
        ax.plot(t[n_test:], truth, color="k", ls=":", label="truth")
        ax.plot(t[n_test:], predicted, color="C0", label=f"LSTM (RMSE {metrics['rmse']})")
        ax.plot(
            t[n_test:], naive, color="C1", ls="--",
            label=f"seasonal naive (RMSE {metrics['rmse_seasonal_naive']})",
        )  # fmt: skip
        if args.early_stop:
            ax.axvspan(t[n_val], t[n_test - 1], color="0.9", label="validation year")
        ax.set_xlabel("year")
        ax.set_ylabel("passengers (thousands)")
        ax.legend()

    return run.finish(metrics, extra=[draw], xlabel="step")


if __name__ == "__main__":
    main()
