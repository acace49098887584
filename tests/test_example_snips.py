"""``examples/snips.py``: the CRF and Viterbi against brute force, BIO rules, and a smoke run."""

from __future__ import annotations

import itertools
import json

import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("orbax.checkpoint")
pytest.importorskip("seqeval")

from examples import snips

TAGS = ["B-a", "B-b", "I-a", "I-b", "O"]


def _paths(k: int, n: int):
    return [np.array(p) for p in itertools.product(range(k), repeat=n)]


def _score(emit, trans, start, end, path):
    n = len(path)
    return (
        start[path[0]]
        + end[path[-1]]
        + sum(emit[t, path[t]] for t in range(n))
        + sum(trans[path[t - 1], path[t]] for t in range(1, n))
    )


def test_crf_log_likelihood_and_viterbi_match_enumeration_of_all_paths():
    rng = np.random.default_rng(0)
    b, t, k = 3, 4, 3
    emit, trans = rng.normal(size=(b, t, k)), rng.normal(size=(k, k))
    start, end = rng.normal(size=k), rng.normal(size=k)
    lengths = np.array([4, 2, 1])
    tags = rng.integers(0, k, (b, t))
    ll = snips.crf_log_likelihood(
        *map(jnp.asarray, (emit, tags, lengths, trans, start, end))
    )  # fmt: skip
    path = snips.viterbi(emit, lengths, trans, start, end)
    for i, n in enumerate(lengths):
        scores = np.array([_score(emit[i], trans, start, end, p) for p in _paths(k, n)])
        log_z = np.log(np.exp(scores).sum())
        gold = _score(emit[i], trans, start, end, tags[i, :n])
        np.testing.assert_allclose(float(ll[i]), gold - log_z, rtol=1e-5)
        np.testing.assert_array_equal(path[i, :n], _paths(k, n)[scores.argmax()])


def test_bio_constrained_viterbi_gives_the_best_valid_sequence():
    ok, starts = snips.allowed_transitions(TAGS), snips.allowed_starts(TAGS)
    # I-x may follow only B-x or I-x; no sequence may start with I-x
    assert ok[0, 2] and ok[2, 2] and not ok[4, 2] and not ok[1, 2] and not ok[3, 2]
    assert ok[4, 0] and ok[2, 1] and list(starts) == [True, True, False, False, True]
    rng = np.random.default_rng(1)
    logp = np.log(rng.dirichlet(np.ones(5), size=(2, 4)))
    logp[0, 0, 2] = 5.0  # an unconstrained argmax would start with I-a
    lengths = np.array([4, 3])
    trans = np.where(ok, 0.0, -np.inf)
    path = snips.viterbi(logp, lengths, trans, np.where(starts, 0.0, -np.inf), np.zeros(5))
    for i, n in enumerate(lengths):
        valid = [
            p for p in _paths(5, n) if starts[p[0]] and all(ok[p[s - 1], p[s]] for s in range(1, n))
        ]
        best = max(valid, key=lambda p: sum(logp[i, s, p[s]] for s in range(n)))
        np.testing.assert_array_equal(path[i, :n], best)


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
