"""Dates as people write them -> ISO 8601 (N vs M): a GRU encoder-decoder with attention.

"the 3rd of March 1997", "3/3/97", "Monday, March 3 1997", "03.03.1997", ... -> "1997-03-03".
A seeded generator below writes calendar dates from 1950 to 2049 in ``len(FORMATS)``
formats (slashes are month/day/year as in the US, dots day.month.year; a two-digit year
``yy`` means 19yy from 50 and 20yy below). The calendar dates are split three ways: 2,000
held out for the test, 500 for validation, the rest for training; each train step draws a
fresh batch of training dates, each in a random format.

Model (pure functions over a dict of parameters): character embeddings -> bidirectional GRU
(``jaxrnn.gru`` with ``lengths``) -> encoder states ``(B, T, 2H)``; a GRU decoder (the pure
``jaxrnn.cells.gru_cell``) that, at every output step, attends over the encoder states with
additive (Bahdanau) attention from its previous state and reads the previous output character
and the context. Training feeds the true previous character (teacher forcing) and runs the
decoder with ``jaxrnn.scan``; evaluation decodes greedily, feeding back its own argmax, in a
``jax.lax.scan``. ``exact_match`` is the share (%) of held-out dates whose 10 output
characters are all right. ``DIR/attention.png`` shows the attention weights of a few.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn
from examples import common
from jaxrnn.attention import additive_attention, init_additive
from jaxrnn.cells import gru_cell
from jaxrnn.params import Layout, init_params, layer_params
from jaxrnn.training import make_train_step, optimizer

FIRST, LAST = dt.date(1950, 1, 1), dt.date(2049, 12, 31)
N_TEST, N_VAL = 2000, 500
IN_CHARS = " ',-./0123456789" + "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
OUT_CHARS = "0123456789-"
PAD, BOS = 0, len(OUT_CHARS)  # input padding id; the decoder's start symbol
IN_LEN, OUT_LEN = 32, 10  # inputs are padded to IN_LEN characters; outputs are YYYY-MM-DD

Params = dict[str, Any]

# --- data --------------------------------------------------------------------------------

MONTHS = calendar.month_name[1:]
WEEKDAYS = calendar.day_name[:]  # Monday first, as date.weekday()


def ordinal(n: int) -> str:
    """``1 -> "1st"``, ``2 -> "2nd"``, ``11 -> "11th"``, ``23 -> "23rd"``."""
    suffix = "th" if 10 <= n % 100 < 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def fields(d: dt.date, case) -> dict[str, str]:
    """The pieces a format is made of; ``case`` writes a word (Title, lower or UPPER)."""
    month, weekday = MONTHS[d.month - 1], WEEKDAYS[d.weekday()]
    return {
        "D": str(d.day), "DD": f"{d.day:02d}", "Dth": ordinal(d.day),
        "M": str(d.month), "MM": f"{d.month:02d}",
        "Month": case(month), "Mon": case(month[:3]),
        "Weekday": case(weekday), "Wkd": case(weekday[:3]),
        "YYYY": str(d.year), "YY": f"{d.year % 100:02d}",
    }  # fmt: skip


FORMATS = (
    "{D} {Month} {YYYY}",  # 3 March 1997
    "{Month} {D}, {YYYY}",  # March 3, 1997
    "the {Dth} of {Month} {YYYY}",  # the 3rd of March 1997
    "{Weekday}, {Month} {D} {YYYY}",  # Monday, March 3 1997
    "{Weekday} {Dth} {Month} {YYYY}",  # Monday 3rd March 1997
    "{Wkd}, {DD} {Mon} {YYYY}",  # Mon, 03 Mar 1997 (e-mail headers)
    "{Dth} {Month} {YYYY}",  # 3rd March 1997
    "{Month} the {Dth}, {YYYY}",  # March the 3rd, 1997
    "{Mon} {D}, {YYYY}",  # Mar 3, 1997
    "{Mon} {Dth} '{YY}",  # Mar 3rd '97
    "{D} {Mon} {YY}",  # 3 Mar 97
    "{D}-{Mon}-{YYYY}",  # 3-Mar-1997
    "{M}/{D}/{YY}",  # 3/3/97
    "{MM}/{DD}/{YYYY}",  # 03/03/1997
    "{DD}.{MM}.{YYYY}",  # 03.03.1997
    "{D}.{M}.{YY}",  # 3.3.97
    "{YYYY}/{MM}/{DD}",  # 1997/03/03
    "{YYYY}{MM}{DD}",  # 19970303
    "{YYYY}-{MM}-{DD}",  # 1997-03-03
)
CASES = (str, str.lower, str.upper)
CASE_P = (0.7, 0.2, 0.1)


def write(d: dt.date, fmt: int, case: int) -> str:
    """Date ``d`` in format ``FORMATS[fmt]``, its words in ``CASES[case]``."""
    return FORMATS[fmt].format(**fields(d, CASES[case]))


def split_dates(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Day numbers (``date.toordinal()``) of the train / validation / test calendar dates."""
    days = np.arange(FIRST.toordinal(), LAST.toordinal() + 1)
    days = np.random.default_rng([seed, 1]).permutation(days)
    return days[N_TEST + N_VAL :], days[N_TEST : N_TEST + N_VAL], days[:N_TEST]


def examples(days: np.ndarray, rng: np.random.Generator) -> tuple[list[str], list[str], np.ndarray]:
    """Each day written in a random format and case: ``(inputs, ISO targets, format ids)``."""
    fmts = rng.integers(len(FORMATS), size=len(days))
    cases = rng.choice(len(CASES), size=len(days), p=CASE_P)
    dates = [dt.date.fromordinal(int(n)) for n in days]
    inputs = [write(d, f, c) for d, f, c in zip(dates, fmts, cases, strict=True)]
    return inputs, [d.isoformat() for d in dates], fmts


def encode(inputs: list[str], targets: list[str]) -> dict[str, np.ndarray]:
    """Padded ids: ``inputs (B, IN_LEN)``, ``lengths (B,)``, ``targets (B, OUT_LEN)``."""
    index = {c: i + 1 for i, c in enumerate(IN_CHARS)}  # 0 is padding
    x = np.zeros((len(inputs), IN_LEN), np.int32)
    for r, s in enumerate(inputs):
        x[r, : len(s)] = [index[c] for c in s]
    y = np.array([[OUT_CHARS.index(c) for c in t] for t in targets], np.int32)
    return {"inputs": x, "lengths": np.array([len(s) for s in inputs], np.int32), "targets": y}


def train_batch(days: np.ndarray, size: int, seed: int, step: int) -> dict[str, np.ndarray]:
    """Training batch ``step``: a function of ``(seed, step)`` only, so resuming replays it."""
    rng = np.random.default_rng([seed, 2, step])
    inputs, targets, _ = examples(rng.choice(days, size), rng)
    return encode(inputs, targets)


# --- model -------------------------------------------------------------------------------


def dense(key, n_in: int, n_out: int) -> dict[str, jax.Array]:
    """``torch.nn.Linear``'s init, ``U(-1/sqrt(n_in), 1/sqrt(n_in))``, as ``{"w", "b"}``."""
    bound = 1.0 / np.sqrt(n_in)
    kw, kb = jax.random.split(key)
    return {
        "w": jax.random.uniform(kw, (n_in, n_out), minval=-bound, maxval=bound),
        "b": jax.random.uniform(kb, (n_out,), minval=-bound, maxval=bound),
    }


def init(
    key: jax.Array, *, embed: int = 32, encoder: int = 64, decoder: int = 128, attention: int = 64
) -> Params:
    """Parameters of the encoder, the bridge to the decoder's first state, and the decoder."""
    k = jax.random.split(key, 7)
    dec_in = embed + 2 * encoder  # previous output character + context
    return {
        "embed_in": jax.random.normal(k[0], (len(IN_CHARS) + 1, embed)),
        "encoder": init_params(k[1], Layout("gru", embed, encoder, bidirectional=True)),
        "bridge": dense(k[2], 2 * encoder, decoder),
        "embed_out": jax.random.normal(k[3], (len(OUT_CHARS) + 1, embed)),
        "decoder": layer_params(init_params(k[4], Layout("gru", dec_in, decoder)), 0, False),
        "attention": init_additive(k[5], decoder, 2 * encoder, attention),
        "out": dense(k[6], decoder + 2 * encoder + embed, len(OUT_CHARS)),
    }


# --8<-- [start:model]
def encode_source(
    params: Params, inputs: jax.Array, lengths: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``inputs (B, T)`` -> encoder states ``(B, T, 2H)``, the decoder's first state ``(B, D)``."""
    x = params["embed_in"][inputs]
    keys, h_n = jaxrnn.gru(params["encoder"], x, lengths=lengths, batch_first=True)
    # h_n[0]: forward state after each sequence's last character; h_n[1]: backward, after the
    # first. Together they summarise the whole input.
    summary = jnp.concatenate([h_n[0], h_n[1]], -1)
    return keys, jnp.tanh(summary @ params["bridge"]["w"] + params["bridge"]["b"])


def decoder_cell(p: Params, h: jax.Array, prev: jax.Array) -> tuple[jax.Array, tuple]:
    """One decoder step, a cell for ``jaxrnn.scan``: ``h (B, D)``, ``prev`` embedding ``(B, E)``.

    ``p`` holds the decoder's parameters and this batch's encoder ``keys`` and ``lengths``.
    Returns the new state and ``(features (B, D + 2H + E), attention weights (B, T))``; the
    output layer reads the features.
    """
    context, weights = additive_attention(p["attention"], h, p["keys"], p["lengths"])
    h, _ = gru_cell(p["decoder"], h, jnp.concatenate([prev, context], -1))
    return h, (jnp.concatenate([h, context, prev], -1), weights)


def decoder_params(params: Params, keys: jax.Array, lengths: jax.Array) -> Params:
    """The decoder cell's parameters with this batch's encoder states (``jaxrnn.scan`` params)."""
    names = ("decoder", "attention")
    return {**{n: params[n] for n in names}, "keys": keys, "lengths": lengths}


def logits_of(params: Params, features: jax.Array) -> jax.Array:
    return features @ params["out"]["w"] + params["out"]["b"]


def teacher_forced(params: Params, batch: dict[str, jax.Array]) -> jax.Array:
    """Output logits ``(B, OUT_LEN, V)`` when each step reads the true previous character."""
    keys, h = encode_source(params, batch["inputs"], batch["lengths"])
    prev = jnp.concatenate(
        [jnp.full_like(batch["targets"][:, :1], BOS), batch["targets"][:, :-1]], axis=1
    )
    xs = jnp.swapaxes(params["embed_out"][prev], 0, 1)  # (S, B, E), time-major for scan
    p = decoder_params(params, keys, batch["lengths"])
    _, (features, _) = jaxrnn.scan.scan(decoder_cell, p, xs, h)
    return jnp.swapaxes(logits_of(params, features), 0, 1)


@jax.jit
def greedy(params: Params, inputs: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Greedy decoding: ``-> (ids (B, OUT_LEN), attention weights (B, OUT_LEN, T))``."""
    keys, h = encode_source(params, inputs, lengths)
    p = decoder_params(params, keys, lengths)

    def step(carry, _):
        h, prev = carry
        h, (features, weights) = decoder_cell(p, h, params["embed_out"][prev])
        out = jnp.argmax(logits_of(params, features), -1)
        return (h, out), (out, weights)

    start = jnp.full(inputs.shape[:1], BOS)
    _, (ids, weights) = jax.lax.scan(step, (h, start), None, length=OUT_LEN)
    return jnp.swapaxes(ids, 0, 1), jnp.swapaxes(weights, 0, 1)


# --8<-- [end:model]


def translate(
    params: Params, inputs: list[str], batch_size: int = 500
) -> tuple[list[str], np.ndarray]:
    """Greedy ISO strings and attention weights for a list of written dates."""
    ids, weights = [], []
    for i in range(0, len(inputs), batch_size):
        part = inputs[i : i + batch_size]
        enc = encode(part, ["0000-00-00"] * len(part))  # targets unused
        out, w = greedy(params, enc["inputs"], enc["lengths"])
        ids.append(np.asarray(out))
        weights.append(np.asarray(w))
    ids, weights = np.concatenate(ids), np.concatenate(weights)
    return ["".join(OUT_CHARS[i] for i in row) for row in ids], weights


# --- plots -------------------------------------------------------------------------------


def draw_attention(ax, source: str, output: str, weights: np.ndarray) -> None:
    """One heat map: output characters (rows) against input characters (columns)."""
    w = weights[: len(output), : len(source)]
    ax.imshow(w, cmap="viridis", aspect="auto", vmin=0, vmax=1)
    ax.set_xticks(range(len(source)), list(source), fontsize=7)
    ax.set_yticks(range(len(output)), list(output), fontsize=7)
    ax.set_title(f"{source!r} -> {output}", fontsize=8)


def plot_attention(path, sources, outputs, weights) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, (len(sources) + 1) // 2, figsize=(4.5 * len(sources) // 2, 6))
    for ax, s, o, w in zip(axes.flat, sources, outputs, weights, strict=False):
        draw_attention(ax, s, o, w)
    fig.suptitle("additive attention: output character (rows) reads input characters")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- training ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("seq2seq", __doc__, steps=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--encoder", type=int, default=None, help="encoder GRU size per direction")
    p.add_argument("--decoder", type=int, default=None, help="decoder GRU size")
    p.add_argument("--eval-every", type=int, default=None, help="steps between validations")
    args = p.parse_args(argv)
    q = args.quick
    steps = common.choose(args.steps, quick=300, default=1500, is_quick=q)
    enc_size = common.choose(args.encoder, quick=32, default=64, is_quick=q)
    dec_size = common.choose(args.decoder, quick=64, default=128, is_quick=q)
    eval_every = args.eval_every or max(steps // 15, 1)

    train_days, val_days, test_days = split_dates(args.seed)
    rng = np.random.default_rng([args.seed, 3])
    val_in, val_out, _ = examples(val_days, rng)
    test_in, test_out, test_fmt = examples(test_days, rng)

    # one jitted init: eagerly, every parameter's random draw would compile on its own
    params = jax.jit(functools.partial(init, encoder=enc_size, decoder=dec_size))(
        jax.random.key(args.seed)
    )
    warmup = min(100, steps // 10)
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, warmup, steps, args.lr / 20)
    opt = optimizer(schedule, max_grad_norm=1.0)

    def loss_fn(params, batch, key):
        logits = teacher_forced(params, batch)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]).mean()
        exact = jnp.all(jnp.argmax(logits, -1) == batch["targets"], -1).mean()
        return loss, {"teacher_forced_exact": exact}

    step = make_train_step(loss_fn, opt)

    def exact_match(params, inputs, targets) -> tuple[float, list[str], np.ndarray]:
        pred, weights = translate(params, inputs)
        ok = np.array([p == t for p, t in zip(pred, targets, strict=True)])
        return 100.0 * ok.mean(), pred, weights

    run = common.Run("seq2seq", args, keep=1)
    state = {"params": params, "opt_state": jax.jit(opt.init)(params)}
    state, done = run.restore(state)
    print(
        f"seq2seq: {len(train_days):,} train / {len(val_days)} val / {len(test_days):,} test "
        f"dates, {len(FORMATS)} formats; {common.count_params(params):,} params"
    )
    with run.progress(steps, initial=done) as bar:
        for i in range(done, steps):
            batch = train_batch(train_days, args.batch_size, args.seed, i)
            params, opt_state, loss, aux = step(
                state["params"], state["opt_state"], batch, common.step_key(args.seed, i)
            )
            state = {"params": params, "opt_state": opt_state}
            bar.update(1, loss=loss, tf_exact=aux["teacher_forced_exact"])
            if (i + 1) % eval_every == 0 or i + 1 == steps:
                val_exact, _, _ = exact_match(state["params"], val_in, val_out)
                run.log(i + 1, loss=bar.mean("loss"), val_exact_match=val_exact)
                bar.write(f"step {i + 1}: loss {bar.mean('loss'):.4f} val exact {val_exact:.2f}%")
                bar.reset_means()
                run.save(i + 1, state)

    exact, pred, weights = exact_match(state["params"], test_in, test_out)
    val_exact, _, _ = exact_match(state["params"], val_in, val_out)
    wrong = [i for i, (p, t) in enumerate(zip(pred, test_out, strict=True)) if p != t]
    by_format = {
        FORMATS[f]: 100.0 * np.mean([pred[i] == test_out[i] for i in np.flatnonzero(test_fmt == f)])
        for f in range(len(FORMATS))
    }
    table = "exact match by format (test):\n" + "\n".join(
        f"  {v:6.2f}%  {k}" for k, v in sorted(by_format.items(), key=lambda kv: kv[1])
    )
    if wrong:
        table += "\nsome errors:\n" + "\n".join(
            f"  {test_in[i]!r} -> {pred[i]} (want {test_out[i]})" for i in wrong[:8]
        )
    # the heat maps: a few formats of different shape, plus the first error if any
    shown = [int(np.flatnonzero(test_fmt == f)[0]) for f in (2, 3, 12, 14, 9)]
    shown += wrong[:1] or [int(np.flatnonzero(test_fmt == 5)[0])]
    plot_attention(
        run.out / "attention.png",
        [test_in[i] for i in shown], [pred[i] for i in shown], weights[shown],
    )  # fmt: skip
    first = shown[0]
    metrics = {
        "exact_match": round(exact, 2),
        "val_exact_match": round(val_exact, 2),
        "errors": len(wrong),
        "test_dates": len(test_in),
        "worst_format_exact_match": round(min(by_format.values()), 2),
        "steps": steps,
        "params": common.count_params(state["params"]),
    }
    return run.finish(
        metrics,
        extra=[functools.partial(draw_attention, source=test_in[first], output=pred[first],
                                 weights=weights[first])],
        xlabel="step",
        table=table,
    )  # fmt: skip


if __name__ == "__main__":
    main()
