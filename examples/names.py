"""Names: which language does a surname come from? An Elman RNN, an LSTM and a GRU compared.

The data of PyTorch's "classifying names with a character-level RNN" tutorial: 20 languages,
one surname a line. Duplicate (name, language) pairs are dropped; a name listed under two
languages stays under both (the task is ambiguous there). One seeded, stratified 80/10/10
split is shared by the three models, which differ only in the recurrent layer
(``jaxrnn.nnx.RNN`` / ``LSTM`` / ``GRU``, same hidden size): characters -> embedding ->
recurrent layer over the padded batch with ``lengths`` -> its final state ``h_n`` -> linear.
Each model keeps the epoch with the best valid accuracy; the table gives its test accuracy,
parameter count and time per epoch (mean over the epochs after the first, which compiles).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxrnn.nnx as jnn
from examples import common
from jaxrnn.training import make_train_step, optimizer

DATA = Path(__file__).resolve().parent / "data" / "names"
KINDS = ("rnn", "lstm", "gru")
LAYERS = {"rnn": jnn.RNN, "lstm": jnn.LSTM, "gru": jnn.GRU}


def load(root: Path = DATA) -> tuple[list[str], np.ndarray, list[str]]:
    """Names, their language ids and the language names (sorted), duplicates dropped."""
    languages = sorted(p.stem for p in root.glob("*.txt"))
    if not languages:
        raise ValueError(f"no <language>.txt files in {root}")
    pairs = sorted(
        {
            (line.strip(), i)
            for i, lang in enumerate(languages)
            for line in (root / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
            if line.strip()
        }
    )
    names = [n for n, _ in pairs]
    return names, np.array([i for _, i in pairs], np.int32), languages


def stratified_split(labels: np.ndarray, seed: int, fractions=(0.8, 0.1, 0.1)):
    """Index arrays (train, valid, test) holding ``fractions`` of every class."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a = round(len(idx) * fractions[0])
        b = a + round(len(idx) * fractions[1])
        for part, chunk in zip(parts, (idx[:a], idx[a:b], idx[b:]), strict=True):
            part.extend(chunk.tolist())
    return tuple(np.sort(np.array(p, np.int64)) for p in parts)


def encode(names: list[str], alphabet: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(N, T_max)`` char ids (0 pads, 1 unknown char) and ``(N,)`` lengths."""
    t = max(len(n) for n in names)
    ids = np.zeros((len(names), t), np.int32)
    for i, n in enumerate(names):
        ids[i, : len(n)] = [alphabet.get(ch, 1) for ch in n]
    return ids, np.array([len(n) for n in names], np.int32)


# --8<-- [start:model]
class Classifier(nnx.Module):
    """Chars ``(B, T)`` + lengths ``(B,)`` -> language logits ``(B, C)``."""

    def __init__(self, kind: str, n_chars: int, n_classes: int, embed: int, hidden: int, *, rngs):
        self.kind = kind
        self.embed = nnx.Embed(n_chars, embed, rngs=rngs)
        self.rnn = LAYERS[kind](embed, hidden, batch_first=True, rngs=rngs)
        self.head = nnx.Linear(hidden, n_classes, rngs=rngs)

    def __call__(self, chars: jax.Array, lengths: jax.Array) -> jax.Array:
        _, h = self.rnn(self.embed(chars), lengths=lengths)
        h = h[0] if self.kind == "lstm" else h  # LSTM: (h_n, c_n)
        return self.head(h[-1])  # h_n of the (only) layer: the state after the last char


# --8<-- [end:model]


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("names", __doc__, epochs=12)
    p.add_argument("--hidden", type=int, default=None, help="hidden size (default: 128)")
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--limit", type=int, default=None, help="use N names (a random subset)")
    p.add_argument(
        "--max-len", type=int, default=None, help="cut names to N chars, one padded shape"
    )
    args = p.parse_args(argv)
    epochs = common.choose(args.epochs, quick=3, default=12, is_quick=args.quick)
    hidden = common.choose(args.hidden, quick=64, default=128, is_quick=args.quick)
    limit = common.choose(args.limit, quick=6000, default=None, is_quick=args.quick)

    names, labels, languages = load()
    if limit:
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(names))[:limit])
        names, labels = [names[i] for i in keep], labels[keep]
    train, valid, test = stratified_split(labels, args.seed)
    alphabet = {ch: i + 2 for i, ch in enumerate(sorted({c for i in train for c in names[i]}))}
    if args.max_len:
        names = [n[: args.max_len] for n in names]
    chars, lengths = encode(names, alphabet)
    bs = args.batch_size
    buckets = (min(10, int(lengths.max())), int(lengths.max()))  # 93% of names have <= 10 chars
    per_epoch = sum(1 for _ in common.bucket_batches(lengths[train], buckets, bs))
    opt = optimizer(optax.cosine_decay_schedule(args.lr, epochs * per_epoch), max_grad_norm=1.0)

    graphs, rest, state = {}, {}, {}
    for j, kind in enumerate(KINDS):
        model = Classifier(
            kind, len(alphabet) + 2, len(languages), args.embed, hidden,
            rngs=nnx.Rngs(args.seed * 10 + j),
        )  # fmt: skip
        # Train the parameters only; the layers' random streams (nnx.RngState) stay as they are.
        graphs[kind], params, rest[kind] = nnx.split(model, nnx.Param, ...)
        params = nnx.to_pure_dict(params)
        state[kind] = {
            "params": params,
            "opt_state": opt.init(params),
            "best_params": params,
            "best_acc": jnp.array(-1.0),
            "epoch_s": jnp.zeros(epochs),  # wall time of each epoch (kept across --resume)
        }

    def make_fns(kind):
        def logits(params, x, n):
            model = nnx.merge(graphs[kind], params, rest[kind])
            return model(x, n)

        def loss_fn(params, batch, key):
            x, n, y, w = batch
            out = logits(params, x, n)
            loss = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(out, y) * w)
            return loss / jnp.sum(w), {"acc": jnp.sum((out.argmax(-1) == y) * w) / jnp.sum(w)}

        return make_train_step(loss_fn, opt), jax.jit(logits)

    def batch_of(t, idx):
        rows, w = common.pad_rows(idx, bs)
        return chars[rows, :t], lengths[rows], labels[rows], w

    def accuracy(predict, params, idx):
        hits = 0
        for t, part in common.bucket_batches(lengths[idx], buckets, bs):
            x, n, y, _ = batch_of(t, idx[part])
            pred = np.asarray(predict(params, x, n)).argmax(-1)[: len(part)]
            hits += int(np.sum(pred == y[: len(part)]))
        return 100.0 * hits / len(idx)

    fns = {kind: make_fns(kind) for kind in KINDS}
    run = common.Run("names", args)
    state, done = run.restore(state)  # the step counts epochs over the three models in turn
    with run.progress(len(KINDS) * epochs * per_epoch, initial=done * per_epoch) as bar:
        for unit in range(done, len(KINDS) * epochs):
            kind, epoch = KINDS[unit // epochs], unit % epochs
            step, predict = fns[kind]
            s = state[kind]
            rng = np.random.default_rng([args.seed, unit])  # same order when resumed
            bar.reset_means()
            start = time.perf_counter()
            for i, (t, part) in enumerate(common.bucket_batches(lengths[train], buckets, bs, rng)):
                batch = batch_of(t, train[part])
                key = common.step_key(args.seed, unit * per_epoch + i)
                params, opt_state, loss, aux = step(s["params"], s["opt_state"], batch, key)
                s = {**s, "params": params, "opt_state": opt_state}
                bar.update(1, **{f"{kind}_loss": loss, f"{kind}_acc": aux["acc"]})
            jax.block_until_ready(s["params"])
            seconds = time.perf_counter() - start
            acc = accuracy(predict, s["params"], valid)
            if acc > float(s["best_acc"]):
                s = {**s, "best_params": s["params"], "best_acc": jnp.array(acc)}
            s = {**s, "epoch_s": s["epoch_s"].at[epoch].set(seconds)}
            state = {**state, kind: s}
            run.log(
                epoch + 1, **{f"{kind}_loss": bar.mean(f"{kind}_loss"), f"{kind}_valid_acc": acc}
            )
            run.save(unit + 1, state)

    metrics, rows = {}, []
    for kind in KINDS:
        s = state[kind]
        acc = accuracy(fns[kind][1], s["best_params"], test)
        times = np.asarray(s["epoch_s"])
        per_epoch_s = float(times[1:].mean() if epochs > 1 else times[0])
        n_params = common.count_params(s["params"])
        metrics |= {f"{kind}_acc": round(acc, 2), f"{kind}_params": n_params,
                    f"{kind}_epoch_s": round(per_epoch_s, 2)}  # fmt: skip
        rows.append(f"| {kind} | {acc:.2f} | {n_params:,} | {per_epoch_s:.2f} |")
    table = "\n".join(
        [f"test accuracy over {len(test)} names, {len(languages)} languages, hidden {hidden}:",
         "| model | test acc (%) | parameters | s / epoch |", "| --- | --- | --- | --- |", *rows]
    )  # fmt: skip
    majority = np.bincount(labels[train]).argmax()  # the baseline: always the commonest
    metrics["majority_acc"] = round(100.0 * float(np.mean(labels[test] == majority)), 2)
    table += f"\n(majority class, {languages[majority]}: {metrics['majority_acc']:.2f})"
    metrics["epochs"] = epochs
    return run.finish(metrics, table=table)


if __name__ == "__main__":
    main()
