"""Loading the native library and registering its FFI targets with JAX (once, lazily)."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path

import jax

LIBRARY = "libjaxrnn_cudnn.so"
DISABLE_ENV = "JAXRNN_DISABLE_CUDNN"
TARGETS = {
    "jaxrnn_cudnn_forward": "JaxrnnCudnnForward",
    "jaxrnn_cudnn_backward": "JaxrnnCudnnBackward",
}
# Where the NVIDIA wheels keep the shared libraries, relative to a sys.path entry.
_WHEEL_LIBS = {
    "libcudart.so.13": ("nvidia/cu13/lib",),
    "libcudart.so.12": ("nvidia/cuda_runtime/lib",),
    "libcudnn.so.9": ("nvidia/cudnn/lib",),
}


def _candidates() -> list[Path]:
    # An explicit path wins; then the package folder (regular install), then the same
    # relative path on sys.path (scikit-build-core's editable install keeps the compiled
    # file in site-packages while the Python files stay in the source tree).
    found = []
    explicit = os.environ.get("JAXRNN_CUDNN_LIBRARY")
    if explicit:
        found.append(Path(explicit))
    found.append(Path(__file__).resolve().parent / LIBRARY)
    found += [Path(p) / "jaxrnn_cudnn" / LIBRARY for p in sys.path if p]
    return found


def _preload() -> list[str]:
    # The RPATH names the folders the build found; when the library moved (another venv, a
    # --target install), load cuDNN and the CUDA runtime from the wheels on sys.path first.
    loaded = []
    for soname, subdirs in _WHEEL_LIBS.items():
        for p in sys.path:
            paths = [Path(p) / s / soname for s in subdirs]
            path = next((q for q in paths if q.exists()), None)
            if path is not None:
                try:
                    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
                    loaded.append(str(path))
                except OSError:
                    pass
                break
    return loaded


class LoadError(RuntimeError):
    """The native library is missing, cannot load, is disabled, or there is no GPU."""


def _gpu_reason() -> str | None:
    try:
        devices = jax.devices("gpu")
    except RuntimeError as err:
        return f"JAX has no GPU backend here ({err}); install jax[cuda13] or jax[cuda12]"
    if not devices:
        return "JAX sees no GPU"
    version = str(getattr(getattr(devices[0], "client", None), "platform_version", "")).lower()
    if "rocm" in version:
        return f"the GPU backend is ROCm, not CUDA ({version})"
    return None


@functools.cache
def library() -> ctypes.CDLL:
    """The loaded native library, its FFI targets registered; raises :class:`LoadError`."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        raise LoadError(f"jaxrnn_cudnn is disabled by {DISABLE_ENV}={os.environ[DISABLE_ENV]}")
    lib = shared_library()
    reason = _gpu_reason()
    if reason is not None:
        raise LoadError(reason)
    n = lib.jaxrnn_cudnn_device_count()
    if n <= 0:
        raise LoadError(f"the CUDA runtime sees no GPU: {last_error(lib) or n}")
    for target, symbol in TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), "CUDA")
    return lib


@functools.cache
def shared_library() -> ctypes.CDLL:
    """The native library loaded with ctypes (no GPU needed); raises :class:`LoadError`."""
    path = next((p for p in _candidates() if p.exists()), None)
    if path is None:
        raise LoadError(
            f"{LIBRARY} not found; build the plugin with "
            "`pip install --no-build-isolation -e plugins/cudnn`"
        )
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        try:
            _preload()
            lib = ctypes.CDLL(str(path))
        except OSError as err:
            raise LoadError(
                f"cannot load {path}: {err} (it needs libcudnn.so.9 and the CUDA runtime: "
                "pip install nvidia-cudnn-cu13 'nvidia-cuda-runtime==13.*', or jax[cuda13])"
            ) from err
    lib.jaxrnn_cudnn_last_error.restype = ctypes.c_char_p
    for name in ("version", "header_version", "device_count"):
        getattr(lib, f"jaxrnn_cudnn_{name}").restype = ctypes.c_int64
    i32, i64p = ctypes.c_int32, ctypes.POINTER(ctypes.c_int64)
    lib.jaxrnn_cudnn_plan.restype = ctypes.c_int64
    lib.jaxrnn_cudnn_plan.argtypes = [i32] * 12 + [i64p]
    lib.jaxrnn_cudnn_weight_params.restype = ctypes.c_int64
    lib.jaxrnn_cudnn_weight_params.argtypes = [i32] * 8 + [i64p]
    return lib


def last_error(lib: ctypes.CDLL) -> str:
    """The message of the last failed ctypes helper call on this thread."""
    return lib.jaxrnn_cudnn_last_error().decode(errors="replace")
