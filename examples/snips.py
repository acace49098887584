"""SNIPS: joint intent detection (N vs 1) and slot filling (N vs N) with a bidirectional LSTM.

Each word is a learned embedding joined with a character-level encoding of its spelling
(a width-3 convolution max-pooled over the word, or with ``--char-encoder lstm`` a char
BiLSTM run through jaxrnn over every word): entity names in SNIPS are often unseen, and rare
training words are dropped to ``<unk>`` now and then so the model learns to lean on the
spelling. A 2-layer BiLSTM reads the padded, length-bucketed batch with ``lengths``. The
intent comes from max+mean pooling over its valid states; each word's slot scores from its
state, a self-attention context over the sentence and the predicted intent distribution
(intent -> slot feeding, as in Stack-Propagation), through a linear-chain CRF
(:mod:`jaxrnn.crf`) whose transitions obey BIO (``crf.bio_constraints``: no ``I-x`` after
``O`` or ``B-y``), in training and in Viterbi decoding. Training: joint loss (intent
cross-entropy + CRF negative log-likelihood), Adam with clipping, warmup + cosine decay over
40 epochs, dropout 0.4, word dropout ``a / (a + count)`` with a = 0.5; the weights evaluated
are an exponential moving average of the trained ones.

``--seeds 0 1 2`` trains once per seed, one after the other, and writes
``OUT/summary.json`` (mean ± std of each metric, and every seed's).

Model selection on the valid split (intent accuracy + slot F1, every epoch), report on test:
intent accuracy, slot F1 (conlleval: exact span and type, via seqeval) and sentence accuracy
(intent and every tag right). Writes ``DIR/test_predictions.txt``: per test utterance the
intent, a tab, the slot tags.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections import Counter
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn.linen as rnn
from examples import common
from jaxrnn import crf
from jaxrnn.sequences import lengths_to_mask
from jaxrnn.training import make_train_step, optimizer

DATA = Path(__file__).resolve().parent / "data" / "snips"
BUCKETS = (10, 16, 36)  # padded sentence lengths: one compiled step (~15 s) per bucket
BUCKETS_FLAG = ",".join(map(str, BUCKETS))
MAX_CHARS = 12  # longer words keep their first 8 and last 4 characters
PAD, UNK = 0, 1


# --- data --------------------------------------------------------------------------------


def read_split(split: str, root: Path = DATA) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """Words, BIO tags and intent of every utterance in ``split`` (train / valid / test)."""
    d = root / split
    words = [line.split() for line in (d / "seq.in").read_text().splitlines()]
    tags = [line.split() for line in (d / "seq.out").read_text().splitlines()]
    intents = (d / "label").read_text().split()
    if not len(words) == len(tags) == len(intents):
        raise ValueError(f"{d}: {len(words)} utterances, {len(tags)} tag lines, {len(intents)}")
    for i, (w, t) in enumerate(zip(words, tags, strict=True)):
        if len(w) != len(t):
            raise ValueError(f"{d} line {i + 1}: {len(w)} words but {len(t)} tags")
    return words, tags, intents


class Vocab:
    """Word, character, tag and intent ids, built from the training split only."""

    def __init__(self, words, tags, intents, min_count: int = 1):
        self.word_count = Counter(w for s in words for w in s)
        kept = sorted(w for w, c in self.word_count.items() if c >= min_count)
        self.words = {w: i + 2 for i, w in enumerate(kept)}  # 0 pad, 1 unk
        chars = sorted({ch for s in words for w in s for ch in w})
        self.chars = {ch: i + 2 for i, ch in enumerate(chars)}  # 0 pad, 1 unk
        self.tags = sorted({t for s in tags for t in s})
        self.tag_id = {t: i for i, t in enumerate(self.tags)}
        self.intents = sorted(set(intents))
        self.intent_id = {t: i for i, t in enumerate(self.intents)}

    def spell(self, word: str) -> list[int]:
        if len(word) > MAX_CHARS:
            word = word[: MAX_CHARS - 4] + word[-4:]
        return [self.chars.get(ch, UNK) for ch in word]

    def unk_rate(self, alpha: float) -> np.ndarray:
        """Per word id, the chance of dropping it to ``<unk>`` in training: ``a / (a + count)``."""
        rate = np.zeros(len(self.words) + 2, np.float32)
        for w, i in self.words.items():
            rate[i] = alpha / (alpha + self.word_count[w])
        return rate


def encode(vocab: Vocab, words, tags, intents) -> dict[str, np.ndarray]:
    """Padded NumPy arrays of a whole split (T = the longest bucket)."""
    n, t = len(words), BUCKETS[-1]
    out = {
        "words": np.zeros((n, t), np.int32),
        "chars": np.zeros((n, t, MAX_CHARS), np.int32),
        "word_lengths": np.ones((n, t), np.int32),  # padding words get length 1 (scan needs >= 1)
        "tags": np.zeros((n, t), np.int32),
        "lengths": np.array([len(s) for s in words], np.int32),
        "intents": np.array([vocab.intent_id.get(y, 0) for y in intents], np.int32),
    }
    if out["lengths"].max() > t:
        raise ValueError(f"an utterance has {out['lengths'].max()} words; at most {t} supported")
    for i, (ws, ts) in enumerate(zip(words, tags, strict=True)):
        for j, (w, tag) in enumerate(zip(ws, ts, strict=True)):
            out["words"][i, j] = vocab.words.get(w, UNK)
            ids = vocab.spell(w)
            out["chars"][i, j, : len(ids)] = ids
            out["word_lengths"][i, j] = len(ids)
            out["tags"][i, j] = vocab.tag_id.get(tag, vocab.tag_id["O"])
    return out


def batches(
    data: dict[str, np.ndarray],
    batch_size: int,
    rng: np.random.Generator | None = None,
    buckets: tuple[int, ...] = BUCKETS,
):
    """Length-bucketed batches ``(indices, batch)``: each is cut to its bucket's length and padded
    to ``batch_size`` rows (``weights`` 0 on the filler rows). ``rng`` shuffles the utterances
    within each bucket and the order of the batches; without it the order is fixed.
    """
    for t, idx in common.bucket_batches(data["lengths"], buckets, batch_size, rng):
        rows, weights = common.pad_rows(idx, batch_size)
        batch = {k: v[rows, :t] if v.ndim > 1 else v[rows] for k, v in data.items()}
        batch["weights"] = weights
        yield idx, batch


# --- model -------------------------------------------------------------------------------


# --8<-- [start:model]
def masked_max(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Max over the valid steps: ``(B, T, H), (B, T) -> (B, H)``."""
    return jnp.max(jnp.where(mask[..., None], x, -1e9), axis=1)


class JointBiLSTM(nn.Module):
    """Words (+ chars) -> 2-layer BiLSTM -> intent logits ``(B, I)``, tag logits ``(B, T, K)``."""

    n_words: int
    n_chars: int
    n_tags: int
    n_intents: int
    word_dim: int = 128
    char_dim: int = 32
    char_hidden: int = 32
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.4
    intent_to_slot: bool = True
    char_encoder: str = "cnn"  # width-3 convolution + max over the word, or "lstm"
    crf: bool = True
    attention: bool = True  # self-attention context joined to each state for the slots
    slot_decoder: bool = False  # a forward LSTM over [states, intent] before the tag layer

    @nn.compact
    def __call__(self, batch, deterministic: bool = True):
        words, lengths = batch["words"], batch["lengths"]
        b, t = words.shape
        x = nn.Embed(self.n_words, self.word_dim)(words)
        if self.char_hidden:
            c = nn.Embed(self.n_chars, self.char_dim)(batch["chars"])  # (B, T, C, E)
            c = c.reshape(b * t, *c.shape[2:])
            n_chars = batch["word_lengths"].reshape(-1)
            if self.char_encoder == "lstm":
                # every word's spelling is one sequence of the char BiLSTM; its final states
                # (forward after the last char, backward after the first) encode the word
                _, (h, _) = rnn.LSTM(self.char_hidden, bidirectional=True, batch_first=True)(
                    c, lengths=n_chars
                )
                w = jnp.concatenate([h[0], h[1]], -1)
            else:
                h = nn.Conv(2 * self.char_hidden, (3,))(c)
                valid = jnp.arange(c.shape[1])[None, :] < n_chars[:, None]
                w = masked_max(jnp.tanh(h), valid)
            x = jnp.concatenate([x, w.reshape(b, t, -1)], -1)
        x = nn.Dropout(self.dropout)(x, deterministic)
        y, _ = rnn.LSTM(
            self.hidden, num_layers=self.layers, bidirectional=True, batch_first=True,
            dropout=self.dropout,
        )(x, lengths=lengths, deterministic=deterministic)  # fmt: skip
        y = nn.Dropout(self.dropout)(y, deterministic)
        mask = lengths_to_mask(lengths, t)
        mean = jnp.sum(y * mask[..., None], 1) / lengths[:, None]
        intent = nn.Dense(self.n_intents)(jnp.concatenate([masked_max(y, mask), mean], -1))
        z = [y]
        if self.attention:
            query, keys = nn.Dense(self.hidden)(y), nn.Dense(self.hidden)(y)
            context, _ = rnn.DotProductAttention(scale=True)(query, keys, lengths)
            z.append(nn.Dropout(self.dropout)(context, deterministic))
        if self.intent_to_slot:
            z.append(jax.nn.softmax(intent)[:, None, :].repeat(t, axis=1))
        z = jnp.concatenate(z, -1)
        if self.slot_decoder:
            z, _ = rnn.LSTM(self.hidden, batch_first=True)(z, lengths=lengths)
            z = nn.Dropout(self.dropout)(z, deterministic)
        slots = nn.Dense(self.n_tags)(z)
        crf_params = None
        if self.crf:  # jaxrnn.crf's parameters, zero-initialised
            k, zeros = self.n_tags, nn.initializers.zeros
            crf_params = {
                "transitions": self.param("crf_transitions", zeros, (k, k)),
                "start": self.param("crf_start", zeros, (k,)),
                "end": self.param("crf_end", zeros, (k,)),
            }
        return intent, slots, crf_params


# --- decoding and metrics ----------------------------------------------------------------
# --8<-- [end:model]


def tags_by_intent(vocab: Vocab, tags, intents) -> np.ndarray:
    """``ok[i, k]``: tag ``k`` occurs with intent ``i`` in the training data (``O`` always)."""
    ok = np.zeros((len(vocab.intents), len(vocab.tags)), bool)
    ok[:, vocab.tag_id["O"]] = True
    for ts, y in zip(tags, intents, strict=True):
        ok[vocab.intent_id[y], [vocab.tag_id[t] for t in ts]] = True
    return ok


def scores(vocab: Vocab, intents, tags, pred_intents, pred_tags) -> dict[str, float]:
    """Intent accuracy, slot F1 (seqeval, conlleval's definition) and sentence accuracy, in %."""
    from seqeval.metrics import f1_score

    intent_ok = np.array([p == y for p, y in zip(pred_intents, intents, strict=True)])
    tags_ok = np.array([p == y for p, y in zip(pred_tags, tags, strict=True)])
    return {
        "intent_acc": 100.0 * intent_ok.mean(),
        "slot_f1": 100.0 * f1_score(tags, pred_tags),
        "sentence_acc": 100.0 * (intent_ok & tags_ok).mean(),
    }


def make_decoder(apply, vocab: Vocab, constrained: bool = True, intent_tags=None):
    """A jitted ``(params, batch) -> (intent ids (B,), tag paths (B, T))``.

    Tags are the Viterbi path (:func:`jaxrnn.crf.viterbi_decode`): of the CRF if the model has
    one, else of the per-token log-probabilities; ``constrained`` forbids what BIO rules out
    (:func:`jaxrnn.crf.bio_constraints`), and ``intent_tags`` (``(intents, K)`` bool) the tags
    never seen with the predicted intent.
    """
    k = len(vocab.tags)
    rules = crf.bio_constraints(vocab.tags) if constrained else None
    allowed = None if intent_tags is None else jnp.asarray(intent_tags)

    @jax.jit
    def decode(params, batch):
        intent_logits, slot_logits, crf_params = apply(params, batch)
        if crf_params is None:
            emit = jax.nn.log_softmax(slot_logits)
            crf_params = {"transitions": jnp.zeros((k, k), emit.dtype)}
        else:
            emit = slot_logits
        intent = jnp.argmax(intent_logits, -1)
        if allowed is not None:
            emit = jnp.where(allowed[intent][:, None, :], emit, crf.FORBIDDEN)
        paths, _ = crf.viterbi_decode(crf_params, emit, batch["lengths"], constraints=rules)
        return intent, paths

    return decode


def predict(decode, vocab: Vocab, params, data, batch_size: int, buckets=BUCKETS):
    """Intents and tag sequences (strings) for every utterance of an encoded split."""
    n = len(data["lengths"])
    intents: list[str] = [""] * n
    tags: list[list[str]] = [[] for _ in range(n)]
    for idx, batch in batches(data, batch_size, buckets=buckets):
        intent, path = (np.asarray(x) for x in decode(params, batch))
        for r, i in enumerate(idx):
            intents[i] = vocab.intents[intent[r]]
            tags[i] = [vocab.tags[k] for k in path[r, : batch["lengths"][r]]]
    return intents, tags


# --- training ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("snips", __doc__, epochs=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (2e-3)")
    p.add_argument("--hidden", type=int, default=None, help="BiLSTM size per direction (128)")
    p.add_argument(
        "--char-hidden", type=int, default=None, help="char encoder size / 2, 0: off (32)"
    )
    p.add_argument("--dropout", type=float, default=0.4)
    p.add_argument("--unk-alpha", type=float, default=0.5, help="word dropout a/(a+count)")
    p.add_argument("--char-encoder", choices=("lstm", "cnn"), default="cnn")
    p.add_argument("--ema", type=float, default=0.999, help="weight averaging decay, 0: off")
    yes_no = argparse.BooleanOptionalAction
    p.add_argument("--crf", action=yes_no, default=True, help="CRF over the slot tags")
    p.add_argument("--attention", action=yes_no, default=True, help="self-attention context")
    p.add_argument("--slot-decoder", action=yes_no, default=False, help="LSTM slot decoder")
    p.add_argument("--intent-to-slot", action=yes_no, default=True, help="feed the intent")
    p.add_argument(
        "--intent-slots", action=yes_no, default=False,
        help="decode only slot types seen with the predicted intent in training",
    )  # fmt: skip
    p.add_argument(
        "--buckets", default=None,
        help=f"padded lengths, one compiled step each (default: {BUCKETS_FLAG}; quick: 16,36)",
    )  # fmt: skip
    p.add_argument("--limit", type=int, default=None, help="use the first N training utterances")
    p.add_argument(
        "--seeds", type=int, nargs="+", default=None,
        help="train once per seed, one after the other (OUT/seed_N), and report mean ± std",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.seeds:
        return over_seeds(argv if argv is not None else sys.argv[1:], args.seeds, args.out)
    q = args.quick
    epochs = common.choose(args.epochs, quick=2, default=40, is_quick=q)
    hidden = common.choose(args.hidden, quick=48, default=128, is_quick=q)
    char_hidden = common.choose(args.char_hidden, quick=16, default=32, is_quick=q)
    limit = args.limit
    buckets = "16,36" if q and args.buckets is None else args.buckets or BUCKETS_FLAG
    buckets = tuple(sorted(int(b) for b in buckets.split(",")))
    train, valid, test = (read_split(s) for s in ("train", "valid", "test"))
    if limit:
        train = tuple(x[:limit] for x in train)
    vocab = Vocab(*train)
    data = {
        name: encode(vocab, *s) for name, s in (("train", train), ("valid", valid), ("test", test))
    }
    unk_rate = jnp.asarray(vocab.unk_rate(args.unk_alpha))
    bio = crf.bio_constraints(vocab.tags)  # in training and decoding

    model = JointBiLSTM(
        n_words=len(vocab.words) + 2, n_chars=len(vocab.chars) + 2, n_tags=len(vocab.tags),
        n_intents=len(vocab.intents), hidden=hidden, char_hidden=char_hidden,
        dropout=args.dropout, intent_to_slot=args.intent_to_slot,
        char_encoder=args.char_encoder, crf=args.crf, attention=args.attention,
        slot_decoder=args.slot_decoder,
    )  # fmt: skip
    bs = args.batch_size
    _, example = next(batches(data["train"], bs, buckets=buckets))
    params = jax.jit(model.init)(jax.random.key(args.seed), example)["params"]  # one compile

    per_epoch = sum(1 for _ in batches(data["train"], bs, buckets=buckets))
    total = epochs * per_epoch
    lr = common.choose(args.lr, quick=5e-3, default=2e-3, is_quick=q)
    warmup = max(1, min(per_epoch, total // 10))
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, total, lr / 50)
    opt = optimizer(schedule, max_grad_norm=5.0)

    def loss_fn(params, batch, key):
        k_unk, k_drop = jax.random.split(key)
        words = batch["words"]
        drop = jax.random.bernoulli(k_unk, unk_rate[words])
        batch = {**batch, "words": jnp.where(drop, UNK, words)}
        intent, slots, crf_params = model.apply(
            {"params": params}, batch, deterministic=False, rngs={"dropout": k_drop}
        )
        w = batch["weights"]
        mask = lengths_to_mask(batch["lengths"], words.shape[1]) * w[:, None]
        intent_ce = optax.softmax_cross_entropy_with_integer_labels(intent, batch["intents"])
        intent_loss = jnp.sum(intent_ce * w) / jnp.sum(w)
        if crf_params is None:
            slot_ce = optax.softmax_cross_entropy_with_integer_labels(slots, batch["tags"])
            slot_loss = jnp.sum(slot_ce * mask) / jnp.sum(mask)
        else:  # negative log-likelihood per token, BIO-invalid transitions ruled out
            nll = -crf.log_likelihood(
                crf_params, slots, batch["tags"], batch["lengths"], constraints=bio
            )
            slot_loss = jnp.sum(nll * w) / jnp.sum(mask)
        acc = jnp.sum((intent.argmax(-1) == batch["intents"]) * w) / jnp.sum(w)
        return intent_loss + slot_loss, {"intent_loss": intent_loss, "slot_loss": slot_loss,
                                         "intent_acc": acc}  # fmt: skip

    step = make_train_step(loss_fn, opt)

    @jax.jit
    def ema_update(ema, params, i):
        decay = jnp.minimum(args.ema, (1.0 + i) / (10.0 + i))  # short memory at the start
        return jax.tree.map(lambda e, p: e + (1 - decay) * (p - e), ema, params)

    apply = functools.partial(model.apply, deterministic=True)

    def apply_fn(params, batch):
        return apply({"params": params}, batch)

    intent_tags = tags_by_intent(vocab, train[1], train[2])

    decoders = {
        (constrained, by_intent): make_decoder(
            apply_fn, vocab, constrained, intent_tags if by_intent else None
        )
        for constrained in (True, False)
        for by_intent in (True, False)
    }

    def evaluate(params, split, constrained=True, by_intent=args.intent_slots):
        d, (_, tags, intents) = data[split], {"valid": valid, "test": test}[split]
        pi, pt = predict(decoders[constrained, by_intent], vocab, params, d, bs, buckets)
        return scores(vocab, intents, tags, pi, pt), pi, pt

    run = common.Run("snips", args)
    state = {
        "params": params,
        "opt_state": jax.jit(opt.init)(params),
        "ema": params,  # exponential moving average of the weights: what is evaluated
        "best_params": params,
        "best_score": jnp.array(-1.0),
    }
    state, done = run.restore(state)
    with run.progress(total, initial=done * per_epoch) as bar:
        for epoch in range(done, epochs):
            bar.reset_means()
            rng = np.random.default_rng([args.seed, epoch])  # same order when resumed
            for i, (_, batch) in enumerate(batches(data["train"], bs, rng, buckets)):
                key = common.step_key(args.seed, epoch * per_epoch + i)
                params, opt_state, loss, aux = step(state["params"], state["opt_state"], batch, key)
                ema = ema_update(state["ema"], params, epoch * per_epoch + i)
                state = {**state, "params": params, "opt_state": opt_state, "ema": ema}
                bar.update(1, loss=loss, intent_acc=aux["intent_acc"])
            val, _, _ = evaluate(state["ema"], "valid")
            score = val["intent_acc"] + val["slot_f1"]
            if score > float(state["best_score"]):
                state = {**state, "best_params": state["ema"], "best_score": jnp.array(score)}
            run.log(epoch + 1, loss=bar.mean("loss"), **{f"valid_{k}": v for k, v in val.items()})
            bar.write(
                f"epoch {epoch + 1}: loss {bar.mean('loss'):.4f} valid "
                + " ".join(f"{k} {v:.2f}" for k, v in val.items())
            )
            run.save(epoch + 1, state)

    best = state["best_params"]
    test_scores, pi, pt = evaluate(best, "test")
    (run.out / "test_predictions.txt").write_text(
        "".join(f"{i}\t{' '.join(t)}\n" for i, t in zip(pi, pt, strict=True))
    )
    val, _, _ = evaluate(best, "valid")
    metrics = {**{k: round(v, 2) for k, v in test_scores.items()}}
    if not args.crf:  # a CRF trained under the BIO rules has no meaningful unconstrained path
        unconstrained, _, _ = evaluate(best, "test", constrained=False)
        metrics["slot_f1_no_bio"] = round(unconstrained["slot_f1"], 2)
    other, _, _ = evaluate(best, "test", by_intent=not args.intent_slots)
    metrics["slot_f1_" + ("any_intent" if args.intent_slots else "intent_slots")] = round(
        other["slot_f1"], 2
    )
    metrics |= {
        **{f"valid_{k}": round(v, 2) for k, v in val.items()},
        "epochs": epochs,
        "params": common.count_params(best),
    }
    return run.finish(metrics)


METRICS = ("intent_acc", "slot_f1", "sentence_acc")


def summarize(runs: dict[int, dict]) -> dict:
    """Mean, sample std (ddof 1) and every seed's value of the test metrics of ``runs``."""
    out: dict = {"seeds": sorted(runs)}
    for name in (*METRICS, "wall_s", "cpu_s"):
        values = np.array([runs[s][name] for s in sorted(runs)], float)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[name] = {"mean": round(float(values.mean()), 2), "std": round(std, 2)}
        out[name]["per_seed"] = [round(float(v), 2) for v in values]
    return out


def over_seeds(argv: list[str], seeds: list[int], out: str) -> dict:
    """``main`` once per seed (same flags, ``--seed N --out OUT/seed_N``), then
    ``OUT/summary.json`` with mean ± std over the seeds."""
    rest, skip = [], False
    for a in argv:  # drop --seeds N ... and --out DIR / --seed N
        if a in ("--seeds", "--out", "--seed"):
            skip = True
            continue
        if skip and (a.lstrip("-").isdigit() or not a.startswith("-")):
            continue
        skip = False
        rest.append(a)
    runs = {
        s: main([*rest, "--seed", str(s), "--out", str(Path(out) / f"seed_{s}")]) for s in seeds
    }
    summary = summarize(runs)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"snips over seeds {seeds}: "
        + " ".join(f"{k} {summary[k]['mean']:.2f} ± {summary[k]['std']:.2f}" for k in METRICS)
    )
    return summary


if __name__ == "__main__":
    main()
