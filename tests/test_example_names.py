"""``examples/names.py``: the data, the stratified split, and a smoke run of the three models."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("orbax.checkpoint")

from examples import names


def test_data_has_20_languages_and_no_duplicate_pairs():
    words, labels, languages = names.load()
    assert len(languages) == 20 and "Welsh" in languages
    assert len(set(zip(words, labels, strict=True))) == len(words) > 19000


def test_split_is_disjoint_complete_and_stratified():
    labels = np.repeat(np.arange(3), [100, 40, 10])
    train, valid, test = names.stratified_split(labels, seed=0)
    together = np.concatenate([train, valid, test])
    assert np.array_equal(np.sort(together), np.arange(len(labels)))
    for c, n in enumerate([100, 40, 10]):
        assert [np.sum(labels[p] == c) for p in (train, valid, test)] == [
            round(0.8 * n),
            round(0.1 * n),
            n - round(0.8 * n) - round(0.1 * n),
        ]
    again = names.stratified_split(labels, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, valid, test), strict=True))


@pytest.mark.slow
def test_names_trains_three_models_and_writes_the_table(tmp_path, capsys):
    args = ["--hidden", "16", "--embed", "8", "--limit", "600", "--max-len", "10", "--lr", "1e-2"]
    args += ["--epochs", "2"]
    metrics = names.main([*args, "--out", str(tmp_path)])
    table = capsys.readouterr().out
    history = json.loads((tmp_path / "history.json").read_text())
    for kind in names.KINDS:
        assert 0.0 <= metrics[f"{kind}_acc"] <= 100.0
        assert metrics[f"{kind}_params"] > 0 and metrics[f"{kind}_epoch_s"] > 0
        losses = [v for _, v in history[f"{kind}_loss"]]
        assert len(losses) == 2 and losses[-1] < losses[0]
        assert f"| {kind} | {metrics[f'{kind}_acc']:.2f} |" in table
    # same embedding, hidden size and head: the LSTM has 4 gate blocks, the GRU 3, Elman 1
    rnn, lstm, gru = (metrics[f"{k}_params"] for k in names.KINDS)
    assert (lstm - rnn) == 3 * (gru - rnn) / 2
    assert json.loads((tmp_path / "metrics.json").read_text())["gru_acc"] == metrics["gru_acc"]
    assert (tmp_path / "plot.png").stat().st_size > 0
    assert any((tmp_path / "checkpoint").iterdir())


def test_bucket_batches_cover_every_example_once_in_its_bucket():
    from examples import common

    lengths = np.random.default_rng(0).integers(1, 27, size=203)
    for rng in (None, np.random.default_rng(1)):
        batches = list(common.bucket_batches(lengths, (10, 26), 16, rng))
        seen = np.concatenate([idx for _, idx in batches])
        assert np.array_equal(np.sort(seen), np.arange(203))
        for t, idx in batches:
            assert 1 <= len(idx) <= 16 and lengths[idx].max() <= t
            assert t == 10 or lengths[idx].min() > 10
    again = list(common.bucket_batches(lengths, (10, 26), 16, np.random.default_rng(1)))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(again, batches, strict=True))
    with pytest.raises(ValueError, match="exceeds the largest bucket 20"):
        list(common.bucket_batches(lengths, (10, 20), 16))
    rows, weights = common.pad_rows(np.array([7, 3]), 4)
    assert rows.tolist() == [7, 3, 7, 7] and weights.tolist() == [1, 1, 0, 0]
