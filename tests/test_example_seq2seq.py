"""Smoke test of ``examples/seq2seq.py`` and its date generator against ``datetime.strptime``."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("orbax.checkpoint")

from examples import seq2seq

# The same formats in strptime's words (ordinal suffixes are cut before parsing).
STRPTIME = {
    "{D} {Month} {YYYY}": "%d %B %Y",
    "{Month} {D}, {YYYY}": "%B %d, %Y",
    "the {Dth} of {Month} {YYYY}": "the %d of %B %Y",
    "{Weekday}, {Month} {D} {YYYY}": "%A, %B %d %Y",
    "{Weekday} {Dth} {Month} {YYYY}": "%A %d %B %Y",
    "{Wkd}, {DD} {Mon} {YYYY}": "%a, %d %b %Y",
    "{Dth} {Month} {YYYY}": "%d %B %Y",
    "{Month} the {Dth}, {YYYY}": "%B the %d, %Y",
    "{Mon} {D}, {YYYY}": "%b %d, %Y",
    "{Mon} {Dth} '{YY}": "%b %d '%y",
    "{D} {Mon} {YY}": "%d %b %y",
    "{D}-{Mon}-{YYYY}": "%d-%b-%Y",
    "{M}/{D}/{YY}": "%m/%d/%y",
    "{MM}/{DD}/{YYYY}": "%m/%d/%Y",
    "{DD}.{MM}.{YYYY}": "%d.%m.%Y",
    "{D}.{M}.{YY}": "%d.%m.%y",
    "{YYYY}/{MM}/{DD}": "%Y/%m/%d",
    "{YYYY}{MM}{DD}": "%Y%m%d",
    "{YYYY}-{MM}-{DD}": "%Y-%m-%d",
}


def parse(text: str, fmt: str) -> dt.date:
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text, flags=re.IGNORECASE)
    d = dt.datetime.strptime(text, STRPTIME[fmt]).date()
    if "%y" in STRPTIME[fmt] and d.year >= 2050:  # strptime's pivot is 69; the example's is 50
        d = d.replace(year=d.year - 100)
    return d


def test_every_written_date_reads_back_as_its_iso_target():
    assert set(STRPTIME) == set(seq2seq.FORMATS)
    days = np.random.default_rng(0).choice(seq2seq.split_dates(0)[0], 600)
    inputs, targets, fmts = seq2seq.examples(days, np.random.default_rng(1))
    assert set(fmts) == set(range(len(seq2seq.FORMATS)))
    for text, iso, f in zip(inputs, targets, fmts, strict=True):
        assert parse(text, seq2seq.FORMATS[f]).isoformat() == iso, (text, iso)
        assert len(text) <= seq2seq.IN_LEN


def test_test_dates_are_held_out_of_training():
    train, val, test = seq2seq.split_dates(0)
    assert len(test) == seq2seq.N_TEST and len(val) == seq2seq.N_VAL
    assert not set(train) & set(test) and not set(train) & set(val) and not set(val) & set(test)
    assert len(train) + len(val) + len(test) == (seq2seq.LAST - seq2seq.FIRST).days + 1


@pytest.mark.slow
def test_seq2seq_trains_and_writes_its_outputs(tmp_path):
    out = tmp_path / "run"
    metrics = seq2seq.main(
        ["--steps", "40", "--encoder", "16", "--decoder", "32", "--batch-size", "32",
         "--eval-every", "20", "--out", str(out)]
    )  # fmt: skip
    history = json.loads((out / "history.json").read_text())
    losses = [v for _, v in history["loss"]]
    assert losses[-1] < losses[0] < 3.0  # ln(11) = 2.40 at the start
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["exact_match"] == metrics["exact_match"] and 0 <= saved["exact_match"] <= 100
    assert saved["test_dates"] == seq2seq.N_TEST
    for name in ("plot.png", "attention.png"):
        assert (out / name).stat().st_size > 0
    assert any((out / "checkpoint").iterdir())
