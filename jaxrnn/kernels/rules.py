"""The built-in rules: what ``backend="auto"`` runs where no wisdom entry applies.

One small table per platform, in one place. A wisdom table measured on the machine
(:mod:`jaxrnn.kernels.wisdom`, ``python -m jaxrnn.tune``) overrides them; these are the
fallback for shapes nobody measured. Which *kernel* is taken is each kernel's ``platforms``
and ``prefer`` (:class:`jaxrnn.kernels.Kernel`); the oneDNN kernel's preference reads the
CPU numbers below. The ``unroll`` that ``"auto"`` passes to the loop is :func:`unroll`.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# --- CPU -------------------------------------------------------------------------------------
# The oneDNN plugin runs LSTM layers with batch * hidden >= ONEDNN_MIN_WORK on Intel CPUs:
# measured faster than the fused XLA loop on an Intel Xeon (BENCHMARKS.md). The GRU and Elman
# results were mixed, so they stay on XLA; at B=8, H=64 the two tied. On a 2-core AMD EPYC
# (AVX-512) the same rule lost to the fused loop on every standard and long LSTM row but one:
# by 10-20% in training and 22-31% in inference (python -m jaxrnn.tune, BENCHMARKS.md,
# "Autotuning"), so on other vendors' CPUs "auto" leaves oneDNN to a wisdom table.
ONEDNN_FAMILIES = ("lstm",)
ONEDNN_MIN_WORK = 1024
ONEDNN_VENDORS = ("intel",)
# lax.scan's unroll on the CPU: 1. On the AMD EPYC the best of unroll 1, 2 and 4 changed
# between two runs of the standard grid on 14 of 24 rows; unroll 1 was within 8% of the
# winner on 23 rows of one run and within 13% on all of the other (BENCHMARKS.md,
# "Autotuning"): a tie, and 1 compiles the smallest loop.
CPU_UNROLL = 1


@functools.cache
def cpu_vendor() -> str:
    """The CPU's maker: ``"intel"``, ``"amd"``, ``"arm"`` or ``"unknown"`` (from
    ``/proc/cpuinfo`` where there is one, else ``platform``); read once per process."""
    if platform.machine().lower().startswith(("arm", "aarch")):
        return "arm"
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")[:4096]
    except OSError:
        text = platform.processor()
    if "GenuineIntel" in text or "Intel" in text:
        return "intel"
    if "AuthenticAMD" in text or "AMD" in text:
        return "amd"
    return "unknown"


def onednn_preferred(family: str, batch: int, hidden: int) -> bool:
    """Whether the CPU rules take the oneDNN plugin (where installed) for this call."""
    return (
        cpu_vendor() in ONEDNN_VENDORS
        and family in ONEDNN_FAMILIES
        and batch * hidden >= ONEDNN_MIN_WORK
    )


# --- GPU -------------------------------------------------------------------------------------
# Measured on one H200 (jax 0.11.2, cuDNN 9.19, TF32 defaults; BENCHMARKS.md, "GPU"): the
# fused XLA loop's step costs ~8 us of loop overhead whatever the size, and unrolling it
# amortises that: at B=32 T=128 I=64 H=256 L=2, unroll 1 -> 16 took the LSTM train step
# from 6.2 to 3.8 ms (torch cuDNN 13.7), the forward from 2.8 to 2.0 ms; the GRU and Elman
# steps gained alike (unroll 4 and 16 within 4% of each other).
GPU_UNROLL = 16
# The cuDNN plugin (a whole stack in one call, as torch) where the fused loop lost to torch:
# every Elman RNN (its steps are too small to amortise XLA's per-step cost: fused unroll 16
# was 0.90x / 1.35x of torch, cuDNN one layer a call 0.70x / 1.09x), large GEMMs (B=128,
# H=1024: fused 1.17-1.28x) and long sequences of a small state (B=8, T=2048, H=128: fused
# 4.3x at unroll 1, ~2x at 16; there torch runs cuDNN's persistent kernels).
CUDNN_FAMILIES = ("rnn_tanh", "rnn_relu")
CUDNN_MIN_WORK = 65536  # batch * hidden
CUDNN_LONG_STEPS, CUDNN_LONG_MAX_HIDDEN = 1024, 128


def cudnn_preferred(family: str, batch: int, hidden: int, steps: int) -> bool:
    """Whether the GPU rules take the cuDNN plugin (where installed) for this call."""
    if family in CUDNN_FAMILIES:
        return True
    if family not in ("lstm", "gru"):
        return False
    long_small = steps >= CUDNN_LONG_STEPS and hidden <= CUDNN_LONG_MAX_HIDDEN
    return batch * hidden >= CUDNN_MIN_WORK or long_small


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
