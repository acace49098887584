"""Vanishing gradients, measured: an Elman RNN, an LSTM and a GRU on the adding problem.

The adding problem (Hochreiter & Schmidhuber 1997; the form of Le et al. 2015): each of the
``T = 200`` steps reads a value drawn from ``U(0, 1)`` and a marker; exactly two steps are
marked, one in each half of the sequence, and the target is the sum of the two marked values.
A model sees the answer's ingredients up to 200 steps before it must give it, so its loss
must send gradient back that far. Predicting 1.0 whatever the input gives ``MSE = 1/6 ~ 0.167``
(the variance of the sum); a model beats that only if it learns to carry the marked values.

For each model this measures ``||dL/dh_t||`` for every step ``t`` at initialisation and after
training (``jaxrnn.training.gradient_flow``, in float64), plots the three models on one
log-scale figure each time (``DIR/gradient_flow.png``, ``DIR/gradient_flow_trained.png``;
both in ``DIR/plot.png``), and reports the test MSE and accuracy on 2,000 fresh sequences:
a prediction counts as right when ``|prediction - target| < 0.04``. ``*_flow_ratio`` is
``||dL/dh_0|| / ||dL/dh_{T-1}||`` at initialisation: how much of the loss's gradient reaches
the first step.

Initialisation is PyTorch's, except the LSTM's gate biases: by default the chrono
initialisation (Tallec & Ollivier 2018), memory time constants spread up to ``T`` steps. With
``--lstm-init plus1`` (forget bias +1, the common practice) the LSTM stayed on the
predict-the-mean plateau in our runs of 1,500-2,000 steps; the GRU learns with PyTorch's init.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn
from examples import common
from jaxrnn.cells import gru_cell, lstm_cell, rnn_tanh_cell
from jaxrnn.params import Layout, init_params, layer_params
from jaxrnn.training import gradient_flow, make_train_step, optimizer, plot_gradient_flow

MODELS = {  # name: (mode, cell, layer function)
    "rnn": ("rnn_tanh", rnn_tanh_cell, jaxrnn.rnn),
    "lstm": ("lstm", lstm_cell, jaxrnn.lstm),
    "gru": ("gru", gru_cell, jaxrnn.gru),
}
TOLERANCE = 0.04  # |prediction - target| below this counts as right
N_TEST = 2000


def adding_problem(
    rng: np.random.Generator, batch: int, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``x (T, B, 2)`` (value, marker) and ``target (B,)``: the sum of the two marked values."""
    values = rng.uniform(size=(steps, batch)).astype(np.float32)
    first = rng.integers(0, steps // 2, size=batch)
    second = rng.integers(steps // 2, steps, size=batch)
    markers = np.zeros((steps, batch), np.float32)
    markers[first, np.arange(batch)] = 1.0
    markers[second, np.arange(batch)] = 1.0
    target = values[first, np.arange(batch)] + values[second, np.arange(batch)]
    return np.stack([values, markers], -1), target


LSTM_INITS = ("chrono", "plus1", "pytorch")


# --8<-- [start:model]
def init(
    name: str, key: jax.Array, hidden: int, *, lstm_init: str = "chrono", horizon: int = 200
) -> dict:
    """A one-layer ``name`` with PyTorch-named params, plus a linear head ``hidden -> 1``.

    PyTorch's initialisation, except for the LSTM's gate biases with ``lstm_init``:
    ``"chrono"`` (Tallec & Ollivier 2018) draws each unit's forget bias from
    ``log U(1, horizon - 1)`` and sets its input bias to the negative, so the memory cells
    start with time constants spread up to ``horizon`` steps; ``"plus1"`` adds 1 to the
    forget bias (Gers et al. 2000; Jozefowicz et al. 2015); ``"pytorch"`` leaves them.
    """
    if lstm_init not in LSTM_INITS:
        raise ValueError(f"lstm_init must be one of {LSTM_INITS}, got {lstm_init!r}")
    mode = MODELS[name][0]
    k1, k2, k3 = jax.random.split(key, 3)
    rnn = init_params(k1, Layout(mode, 2, hidden))
    if mode == "lstm" and lstm_init != "pytorch":
        forget = slice(hidden, 2 * hidden)  # gate blocks are (i, f, g, o)
        if lstm_init == "plus1":
            rnn["bias_hh_l0"] = rnn["bias_hh_l0"].at[forget].add(1.0)
        else:
            bf = jnp.log(jax.random.uniform(k3, (hidden,), minval=1.0, maxval=horizon - 1.0))
            # the gate sees bias_ih + bias_hh: put the whole bias in one of them
            rnn["bias_ih_l0"] = rnn["bias_ih_l0"].at[: 2 * hidden].set(0.0)
            rnn["bias_hh_l0"] = rnn["bias_hh_l0"].at[:hidden].set(-bf).at[forget].set(bf)
    bound = 1.0 / np.sqrt(hidden)
    head = jax.random.uniform(k2, (hidden + 1,), minval=-bound, maxval=bound)
    return {"rnn": rnn, "head": head}


def final_state(carry: Any) -> jax.Array:
    """``h`` of a carry (``(h, c)`` for an LSTM)."""
    return carry[0] if isinstance(carry, tuple) else carry


def predict(name: str, params: dict, x: jax.Array) -> jax.Array:
    """``x (T, B, 2) -> (B,)``: the head applied to the state after the last step."""
    _, state = MODELS[name][2](params["rnn"], x)
    h = final_state(state)[-1]  # (B, H) of the (only) layer
    return h @ params["head"][:-1] + params["head"][-1]


def flow(name: str, params: dict, x: jax.Array, target: jax.Array) -> jax.Array:
    """``||dL/dh_t||`` for ``t = 0 .. T-1`` of the MSE loss on one batch: ``(T,)``."""
    _, cell, _ = MODELS[name]
    p = layer_params(params["rnn"], 0, False)
    b, hidden = x.shape[1], params["head"].shape[0] - 1
    h0 = jnp.zeros((b, hidden))
    carry = (h0, h0) if name == "lstm" else h0

    def loss(ys, final):
        pred = final_state(final) @ params["head"][:-1] + params["head"][-1]
        return jnp.mean((pred - target) ** 2)

    return gradient_flow(cell, p, x, carry, loss)


# --8<-- [end:model]


def flow64(flow_fn: Callable, params: dict, x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``flow_fn`` in float64: an Elman RNN's ``||dL/dh_0||`` at ``T = 200`` is far below
    float32's smallest number (~1e-45) and would print as 0."""
    with jax.enable_x64(True):
        cast = lambda a: jnp.asarray(a, jnp.float64)  # noqa: E731
        return np.asarray(flow_fn(jax.tree.map(cast, params), cast(x), cast(target)))


def score(pred: jax.Array, target: np.ndarray) -> dict[str, float]:
    """Test ``mse`` and ``acc`` (% of predictions within ``TOLERANCE`` of the target)."""
    err = np.asarray(pred) - np.asarray(target)
    return {"mse": float(np.mean(err**2)), "acc": float(100.0 * np.mean(np.abs(err) < TOLERANCE))}


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("gradients", __doc__, steps=3000)
    p.add_argument("--length", type=int, default=200, help="sequence length T")
    p.add_argument("--hidden", type=int, default=None, help="state size of every model")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument(
        "--lstm-init", choices=LSTM_INITS, default="chrono",
        help="the LSTM's gate biases (see init; default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--eval-every", type=int, default=None)
    args = p.parse_args(argv)
    q = args.quick
    steps = common.choose(args.steps, quick=100, default=3000, is_quick=q)
    hidden = common.choose(args.hidden, quick=32, default=64, is_quick=q)
    eval_every = args.eval_every or max(steps // 20, 1)
    t = args.length
    if t < 2:
        raise ValueError(f"--length must be at least 2 (one marker per half), got {t}")

    test_x, test_y = adding_problem(np.random.default_rng([args.seed, 1]), N_TEST, t)
    flow_x, flow_y = test_x[:, :256], test_y[:256]
    baseline = score(np.ones_like(test_y), test_y)

    keys = jax.random.split(jax.random.key(args.seed), len(MODELS))
    # jitted: eagerly, every parameter's random draw would compile on its own
    params = jax.jit(
        lambda keys: {
            n: init(n, k, hidden, lstm_init=args.lstm_init, horizon=t)
            for n, k in zip(MODELS, keys, strict=True)
        }
    )(keys)
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, steps // 20, steps, args.lr / 10)
    opt = optimizer(schedule, max_grad_norm=1.0)

    def train_step(name):
        def loss_fn(params, batch, key):
            x, target = batch
            return jnp.mean((predict(name, params, x) - target) ** 2), None

        return make_train_step(loss_fn, opt)

    steps_of = {name: train_step(name) for name in MODELS}
    predict_of = {name: jax.jit(lambda p, x, n=name: predict(n, p, x)) for name in MODELS}
    flow_of = {name: jax.jit(lambda p, x, y, n=name: flow(n, p, x, y)) for name in MODELS}

    init_flow = {n: flow64(flow_of[n], params[n], flow_x, flow_y) for n in MODELS}

    run = common.Run("gradients", args, keep=1)
    opt_states = jax.jit(lambda p: {n: opt.init(p[n]) for n in MODELS})(params)
    state = {n: {"params": params[n], "opt_state": opt_states[n]} for n in MODELS}
    state, done = run.restore(state)
    print(
        f"gradients: adding problem T={t}, hidden {hidden}, batch {args.batch_size}; "
        f"predicting 1.0 gives test MSE {baseline['mse']:.4f}, accuracy {baseline['acc']:.1f}%"
    )
    with run.progress(steps, initial=done) as bar:
        for i in range(done, steps):
            batch = adding_problem(np.random.default_rng([args.seed, 2, i]), args.batch_size, t)
            losses = {}
            for n in MODELS:
                new_p, new_o, loss, _ = steps_of[n](
                    state[n]["params"], state[n]["opt_state"], batch, common.step_key(args.seed, i)
                )
                state[n] = {"params": new_p, "opt_state": new_o}
                losses[f"{n}_loss"] = loss
            bar.update(1, **losses)
            if (i + 1) % eval_every == 0 or i + 1 == steps:
                accs = {
                    f"{n}_acc": score(predict_of[n](state[n]["params"], test_x), test_y)["acc"]
                    for n in MODELS
                }
                run.log(i + 1, **{k: bar.mean(k) for k in losses}, **accs)
                bar.write(
                    f"step {i + 1}: "
                    + " ".join(f"{n} mse {bar.mean(f'{n}_loss'):.4f}" for n in MODELS)
                    + " | "
                    + " ".join(f"{k} {v:.1f}%" for k, v in accs.items())
                )
                bar.reset_means()
                run.save(i + 1, state)

    trained_flow = {n: flow64(flow_of[n], state[n]["params"], flow_x, flow_y) for n in MODELS}
    plots = (("", "at initialisation", init_flow), ("_trained", "after training", trained_flow))
    for suffix, when, flows in plots:
        # plot_gradient_flow reads the norms with jnp.asarray, which would cast them to
        # float32 (and norms below ~1e-45 to 0) unless 64-bit types are on
        with jax.enable_x64(True):
            plot_gradient_flow(
                {n.upper(): v for n, v in flows.items()},
                run.out / f"gradient_flow{suffix}.png",
                title=f"||dL/dh_t|| {when}, adding problem T={t} (float64)",
            )
    metrics: dict[str, float] = {}
    for n in MODELS:
        s = score(predict_of[n](state[n]["params"], test_x), test_y)
        metrics[f"{n}_acc"] = round(s["acc"], 2)
        metrics[f"{n}_mse"] = round(s["mse"], 5)
    metrics["baseline_acc"] = round(baseline["acc"], 2)
    metrics["baseline_mse"] = round(baseline["mse"], 5)
    for n in MODELS:
        metrics[f"{n}_flow_ratio"] = float(f"{init_flow[n][0] / init_flow[n][-1]:.3g}")
    for n in MODELS:
        metrics[f"{n}_flow_ratio_trained"] = float(
            f"{trained_flow[n][0] / trained_flow[n][-1]:.3g}"
        )
    metrics.update(
        length=t, hidden=hidden, steps=steps, tolerance=TOLERANCE, lstm_init=args.lstm_init
    )

    def draw_flows(ax):
        for color, n in zip(("C0", "C1", "C2"), MODELS, strict=True):
            ax.semilogy(init_flow[n], color=color, ls="--", label=f"{n.upper()} at init")
            ax.semilogy(trained_flow[n], color=color, label=f"{n.upper()} trained")
        ax.set_xlabel("time step t")
        ax.set_ylabel("||dL/dh_t||")
        ax.set_title("gradient flow (float64)")
        ax.legend(fontsize=7)

    return run.finish(metrics, extra=[draw_flows], xlabel="step")


if __name__ == "__main__":
    main()
