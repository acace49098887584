"""Loading the native library and registering its FFI targets with JAX (once, lazily)."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path

import jax

LIBRARY = "libjaxrnn_onednn.so"
DISABLE_ENV = "JAXRNN_DISABLE_ONEDNN"
TARGETS = {
    "jaxrnn_onednn_forward_inference": "JaxrnnOnednnForwardInference",
    "jaxrnn_onednn_forward_training": "JaxrnnOnednnForwardTraining",
    "jaxrnn_onednn_backward": "JaxrnnOnednnBackward",
}


def _candidates() -> list[Path]:
    # An explicit path wins; then the package folder (regular install), then the same
    # relative path on sys.path (scikit-build-core's editable install keeps the compiled
    # file in site-packages while the Python files stay in the source tree).
    found = []
    explicit = os.environ.get("JAXRNN_ONEDNN_LIBRARY")
    if explicit:
        found.append(Path(explicit))
    found.append(Path(__file__).resolve().parent / LIBRARY)
    found += [Path(p) / "jaxrnn_onednn" / LIBRARY for p in sys.path if p]
    return found


def _preload_dnnl() -> None:
    # The RPATH points at the oneDNN wheel's lib folder; if the layout differs (another
    # prefix, a --target install), load libdnnl from the interpreter's prefixes first.
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, sys.exec_prefix)):
        path = Path(prefix) / "lib" / "libdnnl.so.3"
        if path.exists():
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            return


class LoadError(RuntimeError):
    """The native library is missing, cannot load, or is disabled."""


@functools.cache
def library() -> ctypes.CDLL:
    """The loaded native library, its FFI targets registered; raises :class:`LoadError`."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        raise LoadError(f"jaxrnn_onednn is disabled by {DISABLE_ENV}={os.environ[DISABLE_ENV]}")
    path = next((p for p in _candidates() if p.exists()), None)
    if path is None:
        raise LoadError(
            f"{LIBRARY} not found; build the plugin with `pip install -e plugins/onednn`"
        )
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        try:
            _preload_dnnl()
            lib = ctypes.CDLL(str(path))
        except OSError as err:
            raise LoadError(f"cannot load {path}: {err}") from err
    lib.jaxrnn_onednn_workspace_size.restype = ctypes.c_int64
    lib.jaxrnn_onednn_workspace_size.argtypes = [ctypes.c_int32] * 2 + [ctypes.c_int64] * 5
    lib.jaxrnn_onednn_last_error.restype = ctypes.c_char_p
    for name in ("version", "cache_size", "cache_capacity"):
        getattr(lib, f"jaxrnn_onednn_{name}").restype = ctypes.c_int64
    for target, symbol in TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), "cpu")
    # A tiny primitive proves that oneDNN runs on this CPU, not only that it loads.
    if lib.jaxrnn_onednn_workspace_size(0, 0, 2, 1, 1, 1, 0) < 0:
        raise LoadError(f"oneDNN cannot build an LSTM here: {last_error(lib)}")
    return lib


def last_error(lib: ctypes.CDLL) -> str:
    """The message of the last failed ctypes helper call on this thread."""
    return lib.jaxrnn_onednn_last_error().decode(errors="replace")
