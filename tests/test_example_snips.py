"""``examples/snips.py``: its decoder (BIO and intent-slot rules) and a smoke run."""

from __future__ import annotations

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("orbax.checkpoint")
pytest.importorskip("seqeval")

from examples import snips
from jaxrnn import crf

TAGS = ["B-a", "B-b", "I-a", "I-b", "O"]


def test_decoder_obeys_bio_and_intent_slot_rules():
    """``make_decoder``: jaxrnn.crf's Viterbi under BIO rules (checked against enumeration in
    tests/test_crf.py) and, if asked, only the tags seen with the predicted intent."""
    vocab = snips.Vocab([["w"] * 5], [TAGS], ["X"])
    vocab.intents, vocab.intent_id = ["X", "Y"], {"X": 0, "Y": 1}
    rng = np.random.default_rng(1)
    emit = jnp.asarray(rng.normal(size=(2, 4, 5)), jnp.float32).at[:, 0, 2].set(5.0)
    intent_logits = jnp.array([[1.0, 0.0], [0.0, 1.0]])

    def apply(params, batch):
        return intent_logits, emit, None  # softmax tags: Viterbi over log-probabilities

    batch = {"lengths": jnp.array([4, 3])}
    _, paths = snips.make_decoder(apply, vocab)(None, batch)
    rules = crf.bio_constraints(vocab.tags)
    logp = np.asarray(jax.nn.log_softmax(emit))
    for i, n in enumerate([4, 3]):
        valid = [
            p
            for p in itertools.product(range(5), repeat=n)
            if rules.start[p[0]] and all(rules.transitions[a, b] for a, b in itertools.pairwise(p))
        ]
        best = max(valid, key=lambda p: sum(logp[i, s, p[s]] for s in range(n)))
        assert tuple(np.asarray(paths[i, :n])) == best
    only_o = np.zeros((2, 5), bool)
    only_o[:, vocab.tag_id["O"]] = True
    only_o[0] = True  # intent X: any tag; intent Y: only O
    intent, paths = snips.make_decoder(apply, vocab, intent_tags=only_o)(None, batch)
    assert list(np.asarray(intent)) == [0, 1]
    assert set(np.asarray(paths[1, :3]).tolist()) == {vocab.tag_id["O"]}


def test_read_split_rejects_misaligned_tags(tmp_path):
    d = tmp_path / "train"
    d.mkdir()
    (d / "seq.in").write_text("play some jazz\n")
    (d / "seq.out").write_text("O O\n")
    (d / "label").write_text("PlayMusic\n")
    with pytest.raises(ValueError, match="3 words but 2 tags"):
        snips.read_split("train", root=tmp_path)


TINY = ["--hidden", "16", "--char-hidden", "8", "--buckets", "36", "--batch-size", "64",
        "--lr", "1e-2", "--limit", "256"]  # fmt: skip


@pytest.mark.slow
def test_snips_trains_and_writes_its_outputs(tmp_path):
    metrics = snips.main([*TINY, "--epochs", "2", "--out", str(tmp_path)])
    for name in ("intent_acc", "slot_f1", "sentence_acc"):
        assert 0.0 <= metrics[name] <= 100.0
    assert metrics["intent_acc"] > 100 / 7  # better than chance after 8 steps
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["slot_f1"] == metrics["slot_f1"]
    losses = [v for _, v in json.loads((tmp_path / "history.json").read_text())["loss"]]
    assert len(losses) == 2 and losses[-1] < losses[0]

    lines = (tmp_path / "test_predictions.txt").read_text().splitlines()
    words, _, _ = snips.read_split("test")
    assert len(lines) == len(words) == 700
    intents = set((snips.DATA / "train" / "label").read_text().split())
    for line, ws in zip(lines, words, strict=True):
        intent, tags = line.split("\t")
        assert intent in intents and len(tags.split()) == len(ws)
    assert (tmp_path / "plot.png").stat().st_size > 0
    assert any((tmp_path / "checkpoint").iterdir())


def test_seeds_runs_main_per_seed_and_reports_mean_and_std(tmp_path, monkeypatch):
    calls = []

    def fake_main(argv):
        calls.append(argv)
        seed = int(argv[argv.index("--seed") + 1])
        return {"intent_acc": 98.0 + seed, "slot_f1": 94.0, "sentence_acc": 86.0 + 2 * seed,
                "wall_s": 1.0, "cpu_s": 2.0}  # fmt: skip

    monkeypatch.setattr(snips, "main", fake_main)
    argv = ["--epochs", "3", "--seeds", "0", "1", "--out", str(tmp_path), "--seed", "7"]
    summary = snips.over_seeds(argv, [0, 1], str(tmp_path))
    assert calls == [
        ["--epochs", "3", "--seed", "0", "--out", f"{tmp_path}/seed_0"],
        ["--epochs", "3", "--seed", "1", "--out", f"{tmp_path}/seed_1"],
    ]
    assert summary["intent_acc"] == {"mean": 98.5, "std": 0.71, "per_seed": [98.0, 99.0]}
    assert summary["sentence_acc"]["per_seed"] == [86.0, 88.0]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["slot_f1"]["std"] == 0.0 and saved["seeds"] == [0, 1]
