"""Wisdom: the on-disk table of measured kernel choices that ``backend="auto"`` reads.

Each entry holds the times of every (kernel, ``unroll``) candidate for one static signature
of a call, measured on one machine: the family, batch, steps, input features, hidden size,
layers, directions, dtype, ``matmul_dtype``, training (a gradient step) or inference, and
the environment (platform, device kind: the CPU model and core count or the GPU name, the
jax, jaxlib and plugin versions). :func:`jaxrnn.kernels.choose` takes the fastest candidate
that can run the call (:func:`pick`) from the entry with the exact signature, else from the
nearest one measured in the same environment (``NEAREST_MAX``), else the built-in rules
(:mod:`jaxrnn.kernels.rules`).

The table is JSON at ``$JAXRNN_WISDOM``, or ``$XDG_CACHE_HOME/jaxrnn/wisdom.json``
(``~/.cache/jaxrnn/wisdom.json``). It is written atomically (a temporary file renamed over
it), so concurrent writers never corrupt it (two recording at the same instant may lose one
of their new entries, which is then measured again). A corrupt or
unreadable file, malformed entries and entries from other versions are ignored with one
warning each, never an error. Measuring happens only when asked: ``python -m jaxrnn.tune``,
or ``JAXRNN_AUTOTUNE=1``, which times a signature missing from the table when a layer is
traced and records it (:mod:`jaxrnn.functional`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import math
import os
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import jax
import jax.numpy as jnp

FORMAT = 1
# Plugin distributions whose version is part of the environment (a new build times anew).
PLUGINS = ("jaxrnn-onednn", "jaxrnn-cudnn")
# The nearest entry is used only within this distance: the sum over batch, steps, features,
# hidden size and layers of |log2(ratio)|, so 4 is e.g. twice the batch and 8x the steps.
NEAREST_MAX = 4.0
_SIZES = ("batch", "steps", "hidden", "layers")
_MATCH = ("family", "directions", "dtype", "matmul_dtype", "training")

_Candidate = TypeVar("_Candidate", str, tuple[str, int])  # "kernel/unroll" or (kernel, unroll)
_warned: set[str] = set()
_cache: dict[str, tuple[tuple[int, int], list[dict[str, Any]]]] = {}


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def path() -> Path:
    """Where the table lives: ``$JAXRNN_WISDOM``, else the user's cache directory."""
    override = os.environ.get("JAXRNN_WISDOM", "")
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "jaxrnn" / "wisdom.json"


def autotune() -> bool:
    """Whether ``JAXRNN_AUTOTUNE`` asks to time signatures missing from the table."""
    value = os.environ.get("JAXRNN_AUTOTUNE", "")
    if value not in ("", "0", "1"):
        raise ValueError(f"JAXRNN_AUTOTUNE must be '0' or '1', got {value!r}")
    return value == "1"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine() or "unknown cpu"


@functools.cache
def environment(platform: str) -> dict[str, Any]:
    """Where a measurement holds: platform, device kind and versions."""
    if platform == "cpu":
        device = f"{_cpu_model()} x{os.cpu_count()}"
    else:
        device = jax.devices(platform)[0].device_kind
    versions = {"jax": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib")}
    with contextlib.suppress(Exception):
        versions["runtime"] = str(jax.devices(platform)[0].client.platform_version)
    for name in PLUGINS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return {"platform": platform, "device": device, "versions": versions}


def _dtype_name(dtype: Any) -> str | None:
    return None if dtype is None else jnp.dtype(dtype).name


def signature(family: str, call: Any) -> dict[str, Any]:
    """The static facts of ``call`` (a :class:`jaxrnn.kernels.Call`) that a timing depends on."""
    return {
        "family": family,
        "batch": int(call.batch),
        "steps": int(call.steps),
        "features": [int(f) for f in call.features],
        "hidden": int(call.hidden),
        "layers": int(call.layers),
        "directions": int(call.directions),
        "dtype": _dtype_name(call.dtype),
        "matmul_dtype": _dtype_name(call.matmul_dtype),
        "training": bool(call.training),
    }


def candidate(kernel: str, unroll: int) -> str:
    """A candidate's name in the table: ``"fused/4"``."""
    return f"{kernel}/{unroll}"


def parse_candidate(name: str) -> tuple[str, int]:
    """``"fused/4" -> ("fused", 4)``; a ``ValueError`` for anything else."""
    kernel, sep, unroll = name.rpartition("/")
    if not sep or not kernel or not unroll.isdigit() or int(unroll) < 1:
        raise ValueError(f"a wisdom candidate is 'kernel/unroll' such as 'fused/4', got {name!r}")
    return kernel, int(unroll)


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    try:
        ok = (
            all(isinstance(entry[k], str) for k in ("platform", "device", "family"))
            and isinstance(entry["versions"], dict)
            and all(isinstance(entry[k], int) and entry[k] > 0 for k in (*_SIZES, "directions"))
            and isinstance(entry["features"], list)
            and all(isinstance(f, int) and f > 0 for f in entry["features"])
            and isinstance(entry["training"], bool)
            and isinstance(entry["times"], dict)
            and len(entry["times"]) > 0
        )
        for name, seconds in entry["times"].items():
            parse_candidate(name)
            ok = ok and isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0
    except (KeyError, TypeError, ValueError):
        return False
    return ok


def load(where: Path | None = None) -> list[dict[str, Any]]:
    """The table's well-formed entries (``[]`` if there is none or it is unreadable)."""
    where = path() if where is None else where
    try:
        stat = where.stat()
    except OSError:
        return []
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(str(where))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        data = json.loads(where.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise ValueError("no 'entries' list")
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this jaxrnn reads {FORMAT}")
    except (OSError, ValueError) as e:
        _warn_once(f"ignoring the jaxrnn wisdom table {where} ({e}); rerun python -m jaxrnn.tune")
        entries: list[dict[str, Any]] = []
    else:
        entries = [e for e in data["entries"] if _valid_entry(e)]
        if len(entries) < len(data["entries"]):
            _warn_once(
                f"ignoring {len(data['entries']) - len(entries)} malformed entries of the jaxrnn "
                f"wisdom table {where}"
            )
    _cache[str(where)] = (stamp, entries)
    return entries


def _distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    d = sum(abs(math.log2(a[k] / b[k])) for k in _SIZES)
    return d + abs(math.log2(math.prod(a["features"]) / math.prod(b["features"])))


def lookup(family: str, call: Any, platform: str) -> Iterator[tuple[dict[str, Any], str]]:
    """The entries that speak for ``call``, best first, each with how it matched: the exact
    signature, then the nearest measured ones of the same family, directions, dtypes and
    mode on this platform, device and versions (within ``NEAREST_MAX``)."""
    entries = load()
    if not entries:
        return
    env = environment(platform)
    sig = signature(family, call)
    here = [e for e in entries if e["platform"] == platform and e["device"] == env["device"]]
    current = [e for e in here if e["versions"] == env["versions"]]
    if len(current) < len(here):
        _warn_once(
            f"ignoring {len(here) - len(current)} jaxrnn wisdom entries measured with other "
            f"versions than {env['versions']} in {path()}; rerun python -m jaxrnn.tune"
        )
    same = [e for e in current if all(e.get(k) == sig[k] for k in _MATCH)]
    exact = [e for e in same if all(e[k] == sig[k] for k in (*_SIZES, "features"))]
    if exact:
        yield exact[-1], "exact"
    near = [
        (d, e)
        for e in same
        if len(e["features"]) == len(sig["features"])
        and 0 < (d := _distance(e, sig)) <= NEAREST_MAX
    ]
    for d, e in sorted(near, key=lambda de: de[0]):
        yield e, f"nearest (distance {d:.2f})"


def find(family: str, call: Any, platform: str) -> dict[str, Any] | None:
    """The entry with ``call``'s exact signature on this machine, if any."""
    for entry, how in lookup(family, call, platform):
        return entry if how == "exact" else None
    return None


def record(family: str, call: Any, platform: str, times: Mapping[str, float]) -> Path | None:
    """Add (or replace) the entry for ``call``'s signature; returns the table's path, or
    ``None`` with one warning when it cannot be written."""
    where = path()
    entry = {**environment(platform), **signature(family, call)}
    entry["times"] = {name: float(times[name]) for name in sorted(times)}
    entry["best"] = pick(times)
    entry["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    fields = ("platform", "device", "versions", *signature(family, call))
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        _cache.pop(str(where), None)
        entries = [e for e in load(where) if any(e.get(k) != entry[k] for k in fields)]
        data = {"format": FORMAT, "entries": [*entries, entry]}
        fd, tmp = tempfile.mkstemp(dir=where.parent, prefix=".wisdom-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1)
            os.replace(tmp, where)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        _warn_once(f"cannot write the jaxrnn wisdom table {where} ({e}); nothing recorded")
        return None
    return where


def pick(times: Mapping[_Candidate, float]) -> _Candidate:
    """The fastest candidate of measured ``times``; of equal times the smallest name, so the
    pick from a given table is deterministic.

    Examples:
        >>> from jaxrnn.kernels import wisdom
        >>> wisdom.pick({"fused/1": 1.02, "fused/2": 1.00, "scan/1": 1.00})
        'fused/2'
    """
    if not times:
        raise ValueError("pick needs at least one measured candidate, got none")
    return min(sorted(times), key=lambda c: times[c])


# A candidate this much slower than the fastest in the first timed round is timed once more
# at once, and dropped if that time is slow too: its two times stand. On the standard grid
# most candidates lose by more, so this cut its tuning from 191 s to 157-165 s on two cores;
# the close ones all get every round. The second time is there because one stalled call is
# common on a shared machine: with one time only, a stall of the rules' own pick once dropped
# it with a recorded loss of +185% (2026-12-06, GRU B8 T64, 1.2 ms in the other runs).
PRUNE = 1.3


# Each timed call follows this pause, and each round visits the candidates in a new
# (seeded) order: torch's and oneDNN's OpenMP threads keep spinning for a while after a call,
# on the cores the next call needs. benchmarks.run times its peers the same way: with a fixed
# order one name of the same compiled loop came out 1.15-1.67x slower than the other on 1-ms
# rows (the one right after torch); shuffled, with the pause, 0.95-1.15x (BENCHMARKS.md,
# "`auto` with a table against every candidate").
COOLDOWN_S = 0.005


def _timed(run: Callable[[], Any]) -> float:
    time.sleep(COOLDOWN_S)
    start = time.perf_counter()
    jax.block_until_ready(run())
    return time.perf_counter() - start


def measure(runs: Mapping[str, Callable[[], Any]], reps: int = 5) -> dict[str, float]:
    """Median seconds of each zero-argument callable, timed round-robin ``reps`` times after
    one warm-up call each (round-robin so that a noisy neighbour hits every candidate; each
    round in a new seeded order, each call after a ``COOLDOWN_S`` pause). After the first
    round, a candidate over ``PRUNE`` times the fastest is timed again at once and drops out
    if both its times are."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        jax.block_until_ready(run())
    live = dict(runs)
    order = random.Random(0)
    for rep in range(reps):
        names = list(live)
        order.shuffle(names)
        for name in names:
            samples[name].append(_timed(live[name]))
        if rep == 0 and reps > 1:
            fastest = min(s[0] for s in samples.values())
            for name, run in live.items():
                if samples[name][0] > PRUNE * fastest:
                    samples[name].append(_timed(run))
            live = {n: r for n, r in live.items() if min(samples[n]) <= PRUNE * fastest}
    return {name: statistics.median(s) for name, s in samples.items()}
