"""The built-in rules: what ``backend="auto"`` runs where no wisdom entry applies.

One small table per platform, in one place. A wisdom table measured on the machine
(:mod:`jaxrnn.kernels.wisdom`, ``python -m jaxrnn.tune``) overrides them; these are the
fallback for shapes nobody measured. Which *kernel* is taken is each kernel's ``platforms``
and ``prefer`` (:class:`jaxrnn.kernels.Kernel`); the oneDNN kernel's preference reads the
CPU numbers below. The ``unroll`` that ``"auto"`` passes to the loop is :func:`unroll`.
"""

from __future__ import annotations

# --- CPU -------------------------------------------------------------------------------------
# The oneDNN plugin runs LSTM layers with batch * hidden >= ONEDNN_MIN_WORK: measured faster
# than the fused XLA loop on an Intel Xeon (BENCHMARKS.md). The GRU and Elman results were
# mixed, so they stay on XLA; at B=8, H=64 the two tied. On a 2-core AMD EPYC the same rule
# lost 10-23% to the fused loop (issue 21): tune there.
ONEDNN_FAMILIES = ("lstm",)
ONEDNN_MIN_WORK = 1024
# lax.scan's unroll on the CPU: 1 (XLA's CPU loop gains nothing measurable from unrolling
# the matmul-bound steps; BENCHMARKS.md, "Autotuning").
CPU_UNROLL = 1

# --- GPU -------------------------------------------------------------------------------------
# UNMEASURED placeholder: the kernel is the fused XLA loop (the families' order) and the
# unroll below was never measured by these rules' author. On an H200, unroll 16 halved a
# long LSTM's train step (issue 19): the lead sets this from the H200 measurements.
GPU_UNROLL = 1

# --- TPU -------------------------------------------------------------------------------------
TPU_UNROLL = 1  # unmeasured

_UNROLL = {"cpu": CPU_UNROLL, "gpu": GPU_UNROLL, "tpu": TPU_UNROLL}

# The unroll values python -m jaxrnn.tune and JAXRNN_AUTOTUNE time, per platform.
CANDIDATE_UNROLLS = {"cpu": (1, 2, 4), "gpu": (1, 2, 4, 8, 16), "tpu": (1, 2, 4, 8, 16)}


def unroll(platform: str) -> int:
    """The unroll ``"auto"`` uses on ``platform`` without a wisdom entry."""
    return _UNROLL.get(platform, 1)


def candidate_unrolls(platform: str) -> tuple[int, ...]:
    """The unroll values worth timing on ``platform``."""
    return CANDIDATE_UNROLLS.get(platform, (1, 2, 4))
