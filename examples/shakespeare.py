"""Tiny Shakespeare: a character-level LSTM language model (generation, 1 vs N).

``--cell mingru|minlstm|lru|rglru|gru|slstm|mlstm`` trains that recurrent layer instead of the
LSTM (the linear recurrences followed by a GELU MLP; see :class:`CharRNN`); README compares
them.

The text (1,115,394 characters, 65 distinct) is split 90/10: the first 90% to train on, the
last 10% to validate. Training is truncated backpropagation through time over stateful
batches: the training text is cut into ``--batch-size`` parallel streams, each train step
reads the next ``--chunk`` characters of every stream and starts from the state the previous
step ended in, passed through ``stop_gradient`` (``jaxrnn.training.carry_over``). Each epoch
shifts the streams by a seeded offset so chunk borders move.

``val_loss`` is the mean cross-entropy in nats per character over the whole validation text,
read as ``VAL_STREAMS`` contiguous streams with the state carried throughout. At the end the
model continues ``--prompt`` for ``--sample-chars`` characters, each drawn from
``softmax(logits / --temperature)`` by the streaming one-step call (``method="step"``); the
text goes to ``DIR/sample.txt`` and is printed.

The defaults (1,000 steps, 3.2 epochs) reach ``val_loss`` 1.58; ``--long`` trains three
times as long (3,000 steps, 9.6 epochs) to 1.46. Times are in the README.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn.linen as rnn
from examples import common
from jaxrnn.params import Layout
from jaxrnn.training import carry_over, make_train_step, optimizer, stream_batches

DATA = Path(__file__).resolve().parent / "data" / "tinyshakespeare.txt"
VAL_STREAMS = 16  # parallel streams the validation text is read in
VAL_CHUNK = 1024  # steps per jitted evaluation call

# name: (layers, hidden, embed, batch, chunk, lr, dropout, steps); --quick overrides below
SETTINGS = {
    "quick": (1, 128, 32, 16, 64, 4e-3, 0.0, 150),
    "default": (1, 512, 64, 32, 100, 3e-3, 0.0, 1000),
    "long": (1, 512, 64, 32, 100, 3e-3, 0.0, 3000),
}


# --- data --------------------------------------------------------------------------------


def load(path: Path = DATA) -> tuple[str, np.ndarray, np.ndarray]:
    """The alphabet (sorted characters) and the train / validation ids (first 90% / last 10%)."""
    text = path.read_text()
    chars = "".join(sorted(set(text)))
    ids = np.frombuffer(text.encode("latin-1"), np.uint8)
    lookup = np.zeros(256, np.int32)
    lookup[np.frombuffer(chars.encode("latin-1"), np.uint8)] = np.arange(len(chars))
    ids = lookup[ids]
    split = int(0.9 * len(ids))
    return chars, ids[:split], ids[split:]


def epoch_chunks(
    train: np.ndarray, batch: int, chunk: int, seed: int, epoch: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` consecutive chunks ``(inputs, targets)``, each ``(count, B, K)``, of one epoch.

    The streams start at a seeded offset in ``[0, K)``, a function of ``(seed, epoch)`` only.
    """
    offset = int(np.random.default_rng([seed, epoch]).integers(chunk))
    inputs, targets = stream_batches(train[offset:], batch, chunk)
    return inputs[:count], targets[:count]


def val_streams(val: np.ndarray, streams: int) -> tuple[np.ndarray, np.ndarray]:
    """The validation text as ``streams`` contiguous rows: inputs, targets ``(S, N // S)``."""
    per_row = (len(val) - 1) // streams
    rows = np.arange(streams)[:, None] * per_row + np.arange(per_row + 1)[None]
    return val[rows[:, :-1]], val[rows[:, 1:]]


# --- model -------------------------------------------------------------------------------


CELLS = {  # --cell: the linen layer, and whether a GELU MLP follows it
    "lstm": (rnn.LSTM, False),
    "gru": (rnn.GRU, False),
    "mingru": (rnn.MinGRU, True),
    "minlstm": (rnn.MinLSTM, True),
    "lru": (rnn.LRU, True),
    "rglru": (rnn.RGLRU, True),
    # xLSTM's cells with 4 heads (CELL_OPTIONS); the mLSTM is linear in time, so an MLP follows
    "slstm": (functools.partial(rnn.SLSTM, num_heads=4), False),
    "mlstm": (functools.partial(rnn.MLSTM, num_heads=4), True),
}
CELL_OPTIONS = {"slstm": (("num_heads", 4),), "mlstm": (("num_heads", 4),)}
# layers per cell unless --layers: a stack of LRUs with nothing between them is one linear
# filter, so the LRU and RG-LRU get one layer; minGRU and minLSTM, whose gates are
# nonlinear in the input, two
CELL_LAYERS = {"lstm": 1, "gru": 1, "mingru": 2, "minlstm": 2, "lru": 1, "rglru": 1}
CELL_LAYERS |= {"slstm": 1, "mlstm": 1}


# --8<-- [start:model]
class CharRNN(nn.Module):
    """Characters ``(B, T)`` and state -> next-character logits ``(B, T, V)`` and new state.

    ``cell`` is a key of :data:`CELLS`: embedding -> that recurrent stack -> (for the linear
    recurrences, a GELU MLP ``hidden -> hidden``, the nonlinearity their papers put after
    every layer) -> linear. :meth:`step` is the same model one character at a time, through
    the layer's streaming ``step``.
    """

    vocab: int
    hidden: int = 512
    layers: int = 1
    embed: int = 64
    dropout: float = 0.0
    cell: str = "lstm"

    def setup(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        layer, mlp = CELLS[self.cell]
        self.embedding = nn.Embed(self.vocab, self.embed)
        self.rnn = layer(
            self.hidden, num_layers=self.layers, batch_first=True, dropout=self.dropout
        )
        self.mlp = nn.Dense(self.hidden) if mlp else None
        self.drop = nn.Dropout(self.dropout)
        self.out = nn.Dense(self.vocab)

    def _head(self, y: jax.Array, deterministic: bool) -> jax.Array:
        if self.mlp is not None:
            y = y + nn.gelu(self.mlp(y))
        return self.out(self.drop(y, deterministic))

    def __call__(
        self, ids: jax.Array, hx: Any, deterministic: bool = True
    ) -> tuple[jax.Array, Any]:
        y, hx = self.rnn(self.embedding(ids), hx, deterministic=deterministic)
        return self._head(y, deterministic), hx

    def step(self, ids: jax.Array, hx: Any) -> tuple[jax.Array, Any]:
        """One character per stream: ``ids (B,)``, state -> ``logits (B, V)``, state."""
        y, hx = self.rnn.step(self.embedding(ids), hx, deterministic=True)
        return self._head(y, True), hx

    def initial_state(self, batch: int) -> Any:
        """The zero state, stacked over layers: ``(h, c)`` for the LSTM, each
        ``(layers, B, H)``; ``h`` alone for the others (complex for the LRU)."""
        layout = Layout(
            self.cell, self.embed, self.hidden, num_layers=self.layers,
            options=CELL_OPTIONS.get(self.cell, ()),
        )  # fmt: skip
        spec = layout.spec
        shapes = spec.state_shapes(layout.sizes(0), (batch,))
        dtype = spec.state_dtype(jnp.float32)
        state = tuple(jnp.zeros((self.layers, *shape), dtype) for shape in shapes)
        return state[0] if len(state) == 1 else state


CharLSTM = CharRNN  # the name before --cell
# --8<-- [end:model]


def sample(
    model: CharRNN,
    params: Any,
    chars: str,
    prompt: str,
    n: int,
    temperature: float,
    key: jax.Array,
) -> str:
    """``prompt`` followed by ``n`` characters drawn from ``softmax(logits / temperature)``.

    The prompt and the generated characters go through the model one at a time with its
    streaming :meth:`CharRNN.step` (one jitted ``lax.scan``), the state carried between them.
    """
    index = {c: i for i, c in enumerate(chars)}
    unknown = sorted(set(prompt) - set(index))
    if unknown or not prompt:
        raise ValueError(f"the prompt must be non-empty and use the text's characters; {unknown}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    step = functools.partial(model.apply, {"params": params}, method="step")

    @jax.jit
    def generate(prompt_ids, key):
        def read(hx, c):
            logits, hx = step(c[None], hx)
            return hx, logits

        hx, logits = jax.lax.scan(read, model.initial_state(1), prompt_ids)

        def write(carry, key):
            logits, hx = carry  # logits (1, V) of the next character
            c = jax.random.categorical(key, logits / temperature)  # (1,)
            logits, hx = step(c, hx)
            return (logits, hx), c[0]

        _, out = jax.lax.scan(write, (logits[-1], hx), jax.random.split(key, n))
        return out

    out = generate(jnp.array([index[c] for c in prompt]), key)
    return prompt + "".join(chars[i] for i in np.asarray(out))


# --- training ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("shakespeare", __doc__, steps=SETTINGS["default"][-1])
    p.add_argument("--long", action="store_true", help="3,000 steps instead of 1,000")
    p.add_argument("--cell", choices=sorted(CELLS), default="lstm", help="recurrent layer")
    p.add_argument("--layers", type=int, default=None, help="default: 1, minGRU/minLSTM 2")
    p.add_argument("--hidden", type=int, default=None, help="recurrent layer size")
    p.add_argument("--embed", type=int, default=None, help="character embedding size")
    p.add_argument("--batch-size", type=int, default=None, help="parallel streams")
    p.add_argument("--chunk", type=int, default=None, help="truncated-BPTT length")
    p.add_argument("--lr", type=float, default=None, help="peak Adam learning rate")
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--eval-every", type=int, default=None, help="steps between val losses")
    p.add_argument("--prompt", default="ROMEO:\n")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--sample-chars", type=int, default=None)
    args = p.parse_args(argv)
    setting = "quick" if args.quick else "long" if args.long else "default"
    defaults = dict(
        zip(
            ("layers", "hidden", "embed", "batch_size", "chunk", "lr", "dropout", "steps"),
            SETTINGS[setting],
            strict=True,
        )
    )
    defaults["layers"] = defaults["layers"] * CELL_LAYERS[args.cell]
    cfg = {k: v if getattr(args, k) is None else getattr(args, k) for k, v in defaults.items()}
    steps = cfg["steps"]
    eval_every = args.eval_every or max(steps // 20, 1)
    sample_chars = args.sample_chars or (200 if args.quick else 600)

    chars, train, val = load()
    bs, k = cfg["batch_size"], cfg["chunk"]
    per_epoch = len(stream_batches(train[k:], bs, k)[0])  # the shortest epoch over offsets
    val_x, val_y = val_streams(val, VAL_STREAMS)

    model = CharRNN(
        len(chars), cfg["hidden"], cfg["layers"], cfg["embed"], cfg["dropout"], args.cell
    )
    # one jitted init: eagerly, every parameter's random draw would compile on its own
    params = jax.jit(model.init)(
        jax.random.key(args.seed), train[None, :k], model.initial_state(1)
    )["params"]
    warmup = min(100, steps // 10)
    schedule = optax.warmup_cosine_decay_schedule(0.0, cfg["lr"], warmup, steps, cfg["lr"] / 20)
    opt = optimizer(schedule, max_grad_norm=5.0)

    def loss_fn(params, batch, key):
        inputs, targets, hx, reset = batch
        hx = carry_over(hx, reset, batch_axis=1)  # every leaf is (layers, B, ...)
        logits, hx = model.apply(
            {"params": params}, inputs, hx, deterministic=False, rngs={"dropout": key}
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
        return loss, hx

    step = make_train_step(loss_fn, opt)

    @jax.jit
    def val_chunk(params, inputs, targets, hx):
        logits, hx = model.apply({"params": params}, inputs, hx)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).sum(), hx

    def evaluate(params) -> float:
        hx, total = model.initial_state(VAL_STREAMS), 0.0
        for t in range(0, val_x.shape[1], VAL_CHUNK):
            window = slice(t, t + VAL_CHUNK)
            nll, hx = val_chunk(params, val_x[:, window], val_y[:, window], hx)
            total += float(nll)
        return total / val_y.size

    run = common.Run("shakespeare", args, keep=2)
    state = {
        "params": params,
        "opt_state": jax.jit(opt.init)(params),
        "hx": model.initial_state(bs),
    }
    state, done = run.restore(state)
    print(
        f"shakespeare ({args.cell}): {len(train):,} train / {len(val):,} val chars, "
        f"{len(chars)} symbols; "
        f"{cfg}; {common.count_params(params):,} params; {per_epoch} steps per epoch"
    )
    chunks, chunks_epoch = None, None
    with run.progress(steps, initial=done) as bar:
        for i in range(done, steps):
            epoch, j = divmod(i, per_epoch)
            if chunks_epoch != epoch:
                chunks = epoch_chunks(train, bs, k, args.seed, epoch, per_epoch)
                chunks_epoch = epoch
            reset = np.full(bs, j == 0)  # a new epoch starts every stream somewhere else
            batch = (chunks[0][j], chunks[1][j], state["hx"], reset)
            params, opt_state, loss, hx = step(
                state["params"], state["opt_state"], batch, common.step_key(args.seed, i)
            )
            state = {"params": params, "opt_state": opt_state, "hx": hx}
            bar.update(1, loss=loss)
            if (i + 1) % eval_every == 0 or i + 1 == steps:
                val_loss = evaluate(state["params"])
                run.log(i + 1, loss=bar.mean("loss"), val_loss=val_loss)  # x: the checkpoint step
                bar.write(f"step {i + 1}: loss {bar.mean('loss'):.4f} val_loss {val_loss:.4f}")
                bar.reset_means()
                run.save(i + 1, state)

    val_loss = evaluate(state["params"])
    text = sample(
        model, state["params"], chars, args.prompt, sample_chars, args.temperature,
        jax.random.fold_in(jax.random.key(args.seed), 2**31 - 1),
    )  # fmt: skip
    (run.out / "sample.txt").write_text(text + "\n")
    print(text)
    metrics = {
        "val_loss": round(val_loss, 4),
        "val_bits_per_char": round(val_loss / math.log(2), 4),
        "train_loss": round(run.history["loss"][-1][1], 4) if "loss" in run.history else None,
        "steps": steps,
        "epochs": round(steps / per_epoch, 2),
        "params": common.count_params(state["params"]),
        "cell": args.cell,
        **{k: v for k, v in cfg.items() if k != "steps"},
    }
    return run.finish(metrics, xlabel="step")


if __name__ == "__main__":
    main()
