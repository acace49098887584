"""The measured choice of kernel and ``unroll``: the wisdom table, its lookup order (exact
entry, nearest entry, built-in rules), its fallbacks on bad tables, ``JAXRNN_AUTOTUNE`` and
``python -m jaxrnn.tune``. No test asserts a time: the tables here are written by hand with
a chosen winner, and the tests check that ``auto`` takes it and computes the same answer.
"""

from __future__ import annotations

import json
import time
import warnings

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrnn
from jaxrnn import families, kernels, tune
from jaxrnn.kernels import rules, wisdom
from jaxrnn.params import Layout, init_params

LSTM = families.get("lstm")
PLATFORM = jax.default_backend()
# Whichever kernel a table names must give the scan kernel's numbers to float32 rounding;
# on a GPU, TF32 matmuls (seen: 1.3e-5 off for the cuDNN candidate) would blur that.
pytestmark = pytest.mark.usefixtures("float32_matmuls")


def _call(**changes) -> kernels.Call:
    base = kernels.Call(
        dtype=jnp.float32, batch=8, hidden=16, steps=12, features=(4,), layers=1, directions=1
    )
    return base._replace(**changes)


def _picked(call: kernels.Call, **options) -> tuple[str, int | bool]:
    choice = kernels.choose(LSTM, call, **options)
    return choice.kernel.name, choice.unroll


@pytest.fixture
def table(tmp_path, monkeypatch):
    """A fresh table path; each test's warnings are new."""
    where = tmp_path / "wisdom.json"
    monkeypatch.setenv("JAXRNN_WISDOM", str(where))
    monkeypatch.delenv("JAXRNN_AUTOTUNE", raising=False)
    monkeypatch.setattr(wisdom, "_warned", set())
    return where


def _write(where, entries, fmt=wisdom.FORMAT):
    where.write_text(json.dumps({"format": fmt, "entries": entries}))


def _entry(call, times, family="lstm", **changes):
    return {**wisdom.environment(PLATFORM), **wisdom.signature(family, call), "times": times,
            **changes}  # fmt: skip


def test_record_round_trips_and_replaces_its_own_signature(table):
    call = _call(training=True)
    assert wisdom.record("lstm", call, PLATFORM, {"fused/2": 2.0, "scan/1": 3.0}) == table
    assert wisdom.record("lstm", _call(batch=4), PLATFORM, {"fused/1": 1.0}) == table
    assert wisdom.record("lstm", call, PLATFORM, {"fused/4": 1.0, "scan/1": 3.0}) == table
    entries = wisdom.load()
    assert len(entries) == 2
    mine = [e for e in entries if e["batch"] == 8]
    assert len(mine) == 1
    assert mine[0]["times"] == {"fused/4": 1.0, "scan/1": 3.0}
    assert mine[0]["best"] == "fused/4"
    assert {k: mine[0][k] for k in wisdom.signature("lstm", call)} == wisdom.signature("lstm", call)
    assert mine[0]["device"] == wisdom.environment(PLATFORM)["device"]


@pytest.mark.parametrize("winner", ["fused/2", "scan/4"])
def test_auto_takes_the_table_winner_and_always_the_same(table, winner):
    times = {"fused/1": 5.0, "fused/2": 4.0, "scan/4": 4.5}
    times[winner] = 1.0
    _write(table, [_entry(_call(), times)])
    choices = {_picked(_call()) for _ in range(3)}
    assert choices == {wisdom.parse_candidate(winner)}
    assert "exact" in kernels.choose(LSTM, _call()).why


def test_the_nearest_entry_speaks_for_a_near_shape_and_only_there(table):
    _write(table, [_entry(_call(), {"scan/2": 1.0, "fused/1": 2.0})])
    near = kernels.choose(LSTM, _call(batch=16, steps=24))
    assert (near.kernel.name, near.unroll) == ("scan", 2)
    assert "nearest" in near.why
    # far away (steps x 1024), or another mode, dtype or direction count: the rules
    for other in (
        _call(steps=12 * 1024),
        _call(training=True),
        _call(directions=2),
        _call(dtype=jnp.bfloat16),
    ):
        assert kernels.choose(LSTM, other) == kernels.by_rules(LSTM, other), other


def test_without_a_table_the_built_in_rules_choose(table):
    choice = kernels.choose(LSTM, _call())
    assert choice == kernels.by_rules(LSTM, _call())
    assert choice.unroll == rules.unroll(PLATFORM)
    assert "built-in" in choice.why
    assert kernels.explain("lstm", _call()).startswith(f"{choice.kernel.name} with unroll")


def test_an_explicit_unroll_or_kernel_wins_over_the_table(table):
    _write(table, [_entry(_call(), {"fused/4": 1.0, "fused/2": 2.0, "scan/2": 1.5})])
    assert _picked(_call()) == ("fused", 4)
    # an unroll the table never timed: the rules' kernel, run with that unroll
    assert kernels.choose(LSTM, _call(), unroll=3) == kernels.by_rules(LSTM, _call(), 3)
    assert _picked(_call(), unroll=2) == ("scan", 2)  # the fastest timed with unroll 2
    # a named kernel takes its own best measured unroll
    assert _picked(_call(), backend="scan") == ("scan", 2)
    named = kernels.choose(LSTM, _call(), backend="scan", unroll=5)
    assert (named.kernel.name, named.unroll) == ("scan", 5)
    assert "as given" in named.why


def test_a_corrupt_table_warns_once_and_the_rules_choose(table):
    table.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="ignoring the jaxrnn wisdom table"):
        assert kernels.choose(LSTM, _call()) == kernels.by_rules(LSTM, _call())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kernels.choose(LSTM, _call())  # once only
    _write(table, [_entry(_call(), {"scan/2": 1.0})], fmt=0)  # an old format
    with pytest.warns(RuntimeWarning, match="format 0"):
        assert kernels.choose(LSTM, _call()) == kernels.by_rules(LSTM, _call())


def test_entries_of_other_versions_are_ignored_with_a_warning(table):
    stale = _entry(_call(), {"scan/2": 1.0}, versions={"jax": "0.0.1"})
    _write(table, [stale])
    with pytest.warns(RuntimeWarning, match="other versions"):
        assert kernels.choose(LSTM, _call()) == kernels.by_rules(LSTM, _call())


def test_malformed_entries_are_skipped_with_a_warning(table):
    good = _entry(_call(batch=32), {"scan/2": 1.0})
    bad = [
        _entry(_call(), {"scan": 1.0}),  # no unroll
        _entry(_call(), {"scan/2": -1.0}),
        _entry(_call(), {}),
        {"family": "lstm"},
        "not an entry",
    ]
    _write(table, [*bad, good])
    with pytest.warns(RuntimeWarning, match="5 malformed entries"):
        assert wisdom.load() == [good]


def test_a_kernel_no_longer_installed_falls_back(table):
    _write(table, [_entry(_call(), {"gone/1": 0.1, "scan/2": 1.0})])
    assert _picked(_call()) == ("scan", 2)
    _write(table, [_entry(_call(), {"gone/1": 0.1})])
    assert kernels.choose(LSTM, _call()) == kernels.by_rules(LSTM, _call())


def test_a_candidate_that_cannot_run_the_call_is_passed_over(table):
    # the fused kernel cannot run resets: the table's next best that can runs
    _write(table, [_entry(_call(), {"fused/4": 0.1, "scan/2": 1.0})])
    assert _picked(_call(resets=True)) == ("scan", 2)


def test_the_path_is_overridable_and_defaults_to_the_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXRNN_WISDOM", str(tmp_path / "mine.json"))
    assert wisdom.path() == tmp_path / "mine.json"
    monkeypatch.delenv("JAXRNN_WISDOM")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert wisdom.path() == tmp_path / "jaxrnn" / "wisdom.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert wisdom.path() == tmp_path / "home" / ".cache" / "jaxrnn" / "wisdom.json"


def test_an_unwritable_table_warns_and_records_nothing(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("JAXRNN_WISDOM", str(blocker / "wisdom.json"))
    monkeypatch.setattr(wisdom, "_warned", set())
    with pytest.warns(RuntimeWarning, match="cannot write"):
        assert wisdom.record("lstm", _call(), PLATFORM, {"fused/1": 1.0}) is None


def test_bad_options_are_clear_errors(table, monkeypatch):
    p = init_params(jax.random.key(0), Layout("gru", 2, 3))
    x = jnp.ones((3, 2, 2))
    with pytest.raises(ValueError, match="unroll must be 'auto'"):
        jaxrnn.gru(p, x, unroll="fast")
    with pytest.raises(ValueError, match="positive int"):
        jaxrnn.gru(p, x, unroll=0)
    with pytest.raises(TypeError, match="unroll must be"):
        jaxrnn.gru(p, x, unroll=1.5)  # type: ignore[arg-type]
    monkeypatch.setenv("JAXRNN_AUTOTUNE", "yes")
    with pytest.raises(ValueError, match="JAXRNN_AUTOTUNE must be"):
        jaxrnn.gru(p, x)
    with pytest.raises(ValueError, match="kernel/unroll"):
        wisdom.parse_candidate("fused")
    for text in ("lstm", "lstm:B2,T3", "lstm:B2,T3,I2,H0", "lstm:B2,T3,I2,H4,X9"):
        with pytest.raises(ValueError, match="shape"):
            tune.Shape.parse(text)
    with pytest.raises(ValueError, match="unknown"):
        tune.Shape.parse("nope:B2,T3,I2,H4")


def test_training_is_seen_through_grad_and_not_through_jvp():
    seen = []

    def f(x):
        seen.append(kernels.reverse_mode(x))
        return jnp.sum(x * x)

    x = jnp.ones(3)
    f(x)
    jax.jit(jax.grad(f))(x)
    jax.jvp(f, (x,), (x,))
    assert seen == [False, True, False]


def test_autotune_records_a_new_signature_once_then_uses_it(table, monkeypatch):
    monkeypatch.setenv("JAXRNN_AUTOTUNE", "1")
    monkeypatch.setitem(rules.CANDIDATE_UNROLLS, PLATFORM, (1, 2))  # fewer compiles
    p = init_params(jax.random.key(0), Layout("rnn_tanh", 2, 3))
    x = jnp.ones((3, 2, 2))
    jaxrnn.rnn(p, x)
    jax.jit(jax.grad(lambda p: jnp.sum(jaxrnn.rnn(p, x)[0])))(p)
    entries = wisdom.load()
    assert sorted(e["training"] for e in entries) == [False, True]
    family = families.get("rnn_tanh")
    for e in entries:
        assert e["family"] == "rnn_tanh" and (e["batch"], e["steps"], e["hidden"]) == (2, 3, 3)
        call = _call(batch=2, steps=3, hidden=3, features=(2,), training=e["training"])
        assert set(e["times"]) == {wisdom.candidate(*c) for c in kernels.candidates(family, call)}
        assert "exact" in kernels.choose(family, call).why
    stamp = table.stat().st_mtime_ns
    jaxrnn.rnn(p, x)  # known now: nothing is timed again
    assert table.stat().st_mtime_ns == stamp


def test_the_output_is_the_same_whichever_candidate_the_table_names(table):
    steps, batch, inputs, hidden, layers = 5, 3, 3, 8, 1
    p = init_params(jax.random.key(0), Layout("lstm", inputs, hidden, num_layers=layers))
    x = jax.random.normal(jax.random.key(1), (steps, batch, inputs))
    want, (h, c) = jaxrnn.lstm(p, x, backend="scan", unroll=1)
    call = _call(batch=batch, steps=steps, hidden=hidden, features=(inputs,), layers=layers)
    # The kernels compute the same recurrence with sums in other orders: each matmul's
    # rounding is at most (I + H) * eps relative, and with tanh/sigmoid contracting it
    # accumulates at most linearly over T steps and L layers (values are O(1)).
    tol = (inputs + hidden) * steps * layers * np.finfo(np.float32).eps
    for candidate in kernels.candidates(LSTM, call):
        _write(table, [_entry(call, {wisdom.candidate(*candidate): 1.0, "scan/1": 2.0})])
        assert _picked(call) == candidate
        got, (gh, gc) = jaxrnn.lstm(p, x)
        for a, b in ((got, want), (gh, h), (gc, c)):
            np.testing.assert_allclose(a, b, rtol=0, atol=tol, err_msg=str(candidate))


def test_tune_command_line_writes_the_table(table, capsys, monkeypatch):
    monkeypatch.setitem(rules.CANDIDATE_UNROLLS, PLATFORM, (1, 2))  # fewer compiles
    argv = ["--grid", "none", "--shape", "gru:B2,T3,I2,H3", "--mode", "infer", "--reps", "1",
            "--kernels", "fused,scan"]  # fmt: skip
    assert tune.main(argv) == 0
    out = capsys.readouterr().out
    assert "gru B2 T3 I2 H3 L1" in out and "best" in out and "rules" in out
    (entry,) = wisdom.load()
    assert set(entry["times"]) == {f"{k}/{u}" for k in ("fused", "scan")
                                   for u in rules.candidate_unrolls(PLATFORM)}  # fmt: skip
    assert entry["best"] == min(entry["times"], key=entry["times"].get)


def test_gpu_rules_take_cudnn_only_where_the_h200_measured_the_fused_loop_behind_torch():
    from jaxrnn.kernels import rules

    assert rules.unroll("gpu") == 16
    assert rules.cudnn_preferred("rnn_tanh", 32, 256, 128)
    assert rules.cudnn_preferred("rnn_relu", 8, 64, 64)
    assert not rules.cudnn_preferred("lstm", 32, 256, 128)  # fused unroll 16: 0.28x torch
    assert not rules.cudnn_preferred("gru", 32, 256, 128)
    assert rules.cudnn_preferred("lstm", 128, 1024, 256)  # large GEMMs
    assert rules.cudnn_preferred("lstm", 8, 128, 2048)  # long, small state
    assert not rules.cudnn_preferred("lstm", 8, 256, 1024)
    assert not rules.cudnn_preferred("mingru", 128, 1024, 4096)  # not a cuDNN family


def test_cpu_vendor_reads_the_maker_and_is_cached():
    rules.cpu_vendor.cache_clear()
    try:
        assert rules.cpu_vendor() in ("intel", "amd", "arm", "unknown")
        assert rules.cpu_vendor() is rules.cpu_vendor()  # read once per process
    finally:
        rules.cpu_vendor.cache_clear()


def test_onednn_rule_is_vendor_aware(monkeypatch):
    monkeypatch.setattr(rules, "cpu_vendor", lambda: "intel")
    assert rules.onednn_preferred("lstm", 32, 256)
    assert not rules.onednn_preferred("lstm", 8, 64)  # under ONEDNN_MIN_WORK
    assert not rules.onednn_preferred("gru", 32, 256)
    monkeypatch.setattr(rules, "cpu_vendor", lambda: "amd")
    assert not rules.onednn_preferred("lstm", 32, 256)


def test_measure_drops_clear_losers_after_one_round():
    calls = {"fast": 0, "slow": 0}

    def run(name, seconds):
        def go():
            calls[name] += 1
            time.sleep(seconds)

        return go

    # 0 s against 50 ms: only a stall of over 38 ms in one call could keep "slow" in
    times = wisdom.measure({"fast": run("fast", 0.0), "slow": run("slow", 0.05)}, reps=4)
    assert calls == {"fast": 5, "slow": 3}  # warm-up + 4 rounds; warm-up + 1 round + again
    assert set(times) == {"fast", "slow"}  # the dropped one keeps its two times
    assert times["slow"] >= 0.05


def test_measure_keeps_a_candidate_whose_first_timed_call_stalled():
    calls = {"stalls once": 0, "steady": 0}

    # 20 ms against 0 s: a call of the fast one would have to stall for over 26 ms (1.3x) on
    # its second try to be dropped
    def steady():
        calls["steady"] += 1
        time.sleep(0.02)

    def stalls_once():
        calls["stalls once"] += 1
        time.sleep(0.2 if calls["stalls once"] == 2 else 0.0)  # call 1 is the warm-up

    times = wisdom.measure({"steady": steady, "stalls once": stalls_once}, reps=4)
    # timed again at once, it is fast, so it stays for every round and its median is fast
    assert calls == {"steady": 5, "stalls once": 6}
    assert times["stalls once"] < times["steady"]


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    times=st.dictionaries(
        st.sampled_from(["fused/1", "fused/2", "fused/4", "scan/1", "onednn/1"]),
        st.sampled_from([1e-3, 2e-3, 2.5e-3, 0.1]),  # few values: equal times are common
        min_size=1,
    )
)
def test_pick_is_the_fastest_and_breaks_ties_by_name(times):
    picked = wisdom.pick(times)
    assert times[picked] == min(times.values())
    assert picked == min(k for k, v in times.items() if v == times[picked])
    assert wisdom.pick(dict(reversed(list(times.items())))) == picked  # order-independent


def test_pick_refuses_an_empty_table_entry():
    with pytest.raises(ValueError, match="at least one measured candidate"):
        wisdom.pick({})
