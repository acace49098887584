"""Airline passengers: forecast the last 24 months (1959-1960) of Box & Jenkins' series G.

The LSTM models the year-over-year log growth ``d_t = log y_t - log y_{t-12}`` (seasonal
differencing of the log: what is left is a slowly moving growth rate), standardized with
the training months' mean and spread, plus the month as ``(sin, cos)``. It is trained on
every window of the 1949-1958 months to predict the next month's ``d``, then forecasts the 24
held-out months in one closed-loop rollout from Dec 1958, feeding back its own predictions:
no held-out value is ever seen. ``y_t = y_{t-12} * exp(d_t)`` turns them into passengers.

Baseline: the seasonal-naive forecast of the same 24 months (each month = the same month of
the last observed year, 1958, as Hyndman & Athanasopoulos define it for a 24-month horizon).
Built on the functional API: ``jaxrnn.lstm`` over the windows, ``jaxrnn.cells.lstm_cell``
one step at a time for the rollout.
"""

from __future__ import annotations

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


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("airline", __doc__, steps=1500)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--window", type=int, default=36, help="training window length (months)")
    p.add_argument("--lr", type=float, default=3e-3)
    args = p.parse_args(argv)
    steps = common.choose(args.steps, quick=300, default=1500, is_quick=args.quick)
    every = max(steps // 5, 1)  # checkpoint interval

    y = load()
    logy = np.log(y)
    d = logy[SEASON:] - logy[:-SEASON]  # d[i] is month i + 12
    months = np.arange(SEASON, len(y))
    n_train = len(d) - HORIZON
    mean, std = d[:n_train].mean(), d[:n_train].std()
    x_all = features((d - mean) / std, months)
    x_train = x_all[:n_train]
    w = args.window
    starts = np.arange(n_train - w)  # window i reads months i..i+w-1, predicts i+1..i+w
    windows = jnp.asarray(np.stack([x_train[s : s + w] for s in starts]))
    targets = jnp.asarray(np.stack([x_train[s + 1 : s + w + 1, 0] for s in starts]))

    def loss_fn(params, batch, key):
        x, t = batch
        return jnp.mean((predict_next(params, x) - t) ** 2), {}

    opt = optimizer(args.lr, max_grad_norm=1.0)
    step = make_train_step(loss_fn, opt)
    params = init(jax.random.key(args.seed), args.hidden)
    run = common.Run("airline", args)
    state, done = run.restore({"params": params, "opt_state": opt.init(params)})
    with run.progress(steps, initial=done) as bar:
        for i in range(done, steps):
            params, opt_state, loss, _ = step(
                state["params"],
                state["opt_state"],
                (windows, targets),
                common.step_key(args.seed, i),
            )
            state = {"params": params, "opt_state": opt_state}
            bar.update(1, loss=loss)
            if (i + 1) % every == 0 or i + 1 == steps:
                run.log(i + 1, train_loss=bar.mean("loss"))
                bar.reset_means()
                run.save(i + 1, state)

    future = jnp.asarray(months[n_train:])
    ds = np.asarray(jax.jit(rollout)(state["params"], jnp.asarray(x_train), future))
    ds = ds * std + mean
    forecast = np.zeros(HORIZON)
    history = list(y[: len(y) - HORIZON])
    for h in range(HORIZON):  # y_t = y_{t-12} exp(d_t), with forecasts standing in for y
        forecast[h] = history[-SEASON] * np.exp(ds[h])
        history.append(forecast[h])
    truth = y[-HORIZON:]
    naive = np.tile(y[-HORIZON - SEASON : -HORIZON], HORIZON // SEASON)
    metrics = {
        "rmse": round(rmse(forecast, truth), 2),
        "rmse_seasonal_naive": round(rmse(naive, truth), 2),
        "mape": round(float(np.mean(np.abs(forecast - truth) / truth) * 100), 2),
        "steps": steps,
        "params": common.count_params(state["params"]),
    }

    def draw(ax):
        t = 1949 + np.arange(len(y)) / 12
        ax.plot(t[:-HORIZON], y[:-HORIZON], color="k", label="history")
        ax.plot(t[-HORIZON:], truth, color="k", ls=":", label="truth")
        ax.plot(t[-HORIZON:], forecast, color="C0", label=f"LSTM (RMSE {metrics['rmse']})")
        ax.plot(
            t[-HORIZON:], naive, color="C1", ls="--",
            label=f"seasonal naive (RMSE {metrics['rmse_seasonal_naive']})",
        )  # fmt: skip
        ax.set_xlabel("year")
        ax.set_ylabel("passengers (thousands)")
        ax.legend()

    return run.finish(metrics, extra=[draw], xlabel="step")


if __name__ == "__main__":
    main()
