"""The contenders: one ``Peer`` per implementation, built for a ``Case`` on shared inputs.

Each builder returns ``{"step": fn, "fwd": fn}`` (or ``None`` where the peer cannot run the
case); calling ``fn()`` runs one jitted training step (forward + backward of ``sum(output)``)
or one forward pass and blocks until the result is ready. Weights of jaxrnn and torch are
the same numbers (``from_torch``); Flax draws its own (shapes match, timing does not care).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn

Runner = Callable[[], object]


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark shape: ``mode`` in ``lstm | gru | rnn`` (tanh), sizes as in PyTorch."""

    name: str
    mode: str
    batch: int
    steps: int
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False

    def label(self) -> str:
        bi = " bi" if self.bidirectional else ""
        return (
            f"{self.mode.upper()}{bi} B={self.batch} T={self.steps} I={self.input_size} "
            f"H={self.hidden_size} L={self.num_layers}"
        )


def gpu_available() -> bool:
    return jax.default_backend() == "gpu"


def _torch():
    import torch

    return torch


def torch_module(case: Case, seed: int = 0):
    torch = _torch()
    torch.manual_seed(seed)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[case.mode]
    return cls(
        case.input_size,
        case.hidden_size,
        case.num_layers,
        bidirectional=case.bidirectional,
    )


def inputs(case: Case, seed: int = 0) -> np.ndarray:
    """The shared input, time-major ``(T, B, I)`` float32."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((case.steps, case.batch, case.input_size)).astype(np.float32)


def _block(tree):
    return jax.block_until_ready(tree)


def _jax_runners(fwd, params, x, *extra) -> dict[str, Runner]:
    """Jitted ``value_and_grad`` of ``sum(fwd(params, x, *extra))`` and jitted ``fwd``."""
    # The step differentiates fwd itself, not the jitted forward: under grad(jit(fwd)) jaxrnn
    # traces the layer before differentiating it, so backend="auto" would read a training step
    # as inference (jaxrnn.kernels.reverse_mode) and take the inference entry of a wisdom table.
    step = jax.jit(jax.value_and_grad(lambda p, x, *e: fwd(p, x, *e).sum()))
    forward = jax.jit(fwd)
    return {
        "step": lambda: _block(step(params, x, *extra)),
        "fwd": lambda: _block(forward(params, x, *extra)),
    }


_FUNCS = {"lstm": jaxrnn.lstm, "gru": jaxrnn.gru, "rnn": jaxrnn.rnn}


def jaxrnn_peer(
    case: Case, module, x: np.ndarray, remat=None, matmul_dtype=None, backend: str = "auto"
) -> dict[str, Runner]:
    params = jax.device_put(jaxrnn.interop.from_torch(module))
    fn = _FUNCS[case.mode]

    def fwd(p, x):
        return fn(p, x, remat=remat, matmul_dtype=matmul_dtype, backend=backend)[0]

    return _jax_runners(fwd, params, jnp.asarray(x))


def jaxrnn_bf16_peer(case: Case, module, x: np.ndarray) -> dict[str, Runner]:
    """jaxrnn with ``matmul_dtype=bfloat16``: float32 in and out, bf16 matmul operands."""
    return jaxrnn_peer(case, module, x, matmul_dtype=jnp.bfloat16)


def jaxrnn_generic_peer(case: Case, module, x: np.ndarray) -> dict[str, Runner]:
    """jaxrnn on the scan kernel: autodiff of the plain cell scan (the baseline)."""
    return jaxrnn_peer(case, module, x, backend="scan")


def torch_peer(case: Case, module, x: np.ndarray, device: str = "cpu") -> dict[str, Runner]:
    torch = _torch()
    module = module.to(device)
    xt = torch.from_numpy(x).to(device)
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)

    def step():
        module.zero_grad(set_to_none=True)
        out, _ = module(xt)
        out.sum().backward()
        sync()

    def fwd():
        with torch.no_grad():
            module(xt)
        sync()

    return {"step": step, "fwd": fwd}


def _flax_cells(case: Case):
    import flax.linen as nn

    return {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "rnn": nn.SimpleCell}[case.mode]


def linen_peer(case: Case, module, x: np.ndarray) -> dict[str, Runner]:
    """``flax.linen.RNN`` over Flax's own cells, stacked (and ``Bidirectional``) like torch."""
    import flax.linen as nn

    cell = _flax_cells(case)
    h = case.hidden_size

    class Stack(nn.Module):
        @nn.compact
        def __call__(self, x):
            for _ in range(case.num_layers):
                if case.bidirectional:
                    x = nn.Bidirectional(nn.RNN(cell(h)), nn.RNN(cell(h)), time_major=True)(x)
                else:
                    x = nn.RNN(cell(h), time_major=True)(x)
            return x

    model = Stack()
    xj = jnp.asarray(x)
    params = model.init(jax.random.PRNGKey(0), xj)
    return _jax_runners(model.apply, params, xj)


def nnx_peer(case: Case, module, x: np.ndarray) -> dict[str, Runner]:
    """``flax.nnx.RNN`` (its own ``nnx.scan``) over nnx cells, run as a pure function."""
    from flax import nnx

    cls = {"lstm": nnx.OptimizedLSTMCell, "gru": nnx.GRUCell, "rnn": nnx.SimpleCell}[case.mode]
    rngs = nnx.Rngs(0)
    d = 2 if case.bidirectional else 1
    layers, size = [], case.input_size
    for _ in range(case.num_layers):
        if case.bidirectional:
            fw = nnx.RNN(cls(size, case.hidden_size, rngs=rngs), time_major=True)
            bw = nnx.RNN(cls(size, case.hidden_size, rngs=rngs), time_major=True)
            layers.append(nnx.Bidirectional(fw, bw, time_major=True))
        else:
            layers.append(nnx.RNN(cls(size, case.hidden_size, rngs=rngs), time_major=True))
        size = d * case.hidden_size
    graph, params, rest = nnx.split(nnx.List(layers), nnx.Param, ...)

    def fwd(params, x, rest):  # rest (rng state) traced too: nnx mutates it for the carry
        for layer in nnx.merge(graph, params, rest):
            x = layer(x)
        return x

    # jitted before it is differentiated: nnx refuses to mutate the rng state (created from
    # the undifferentiated `rest`) inside value_and_grad's trace without a jit boundary
    return _jax_runners(jax.jit(fwd), params, jnp.asarray(x), rest)


def jax_cudnn_peer(case: Case, module, x: np.ndarray) -> dict[str, Runner] | None:
    """``jax.experimental.rnn.lstm`` (cuDNN); GPU and LSTM only."""
    if case.mode != "lstm" or not gpu_available():
        return None
    from jax.experimental import rnn

    b, d = case.batch, 2 if case.bidirectional else 1
    weights = rnn.init_lstm_weight(
        jax.random.PRNGKey(0), case.input_size, case.hidden_size, case.num_layers,
        case.bidirectional,
    )  # fmt: skip
    xb = jnp.asarray(np.swapaxes(x, 0, 1))  # cuDNN wants (B, T, I)
    zeros = jnp.zeros((case.num_layers * d, b, case.hidden_size), xb.dtype)
    lengths = jnp.full((b,), case.steps, jnp.int32)

    def fwd(w, x):
        return rnn.lstm(
            x, zeros, zeros, w, lengths, case.input_size, case.hidden_size, case.num_layers,
            0.0, case.bidirectional,
        )[0]  # fmt: skip

    return _jax_runners(fwd, weights, xb)


# name -> (builder, which backends it runs on)
def jaxrnn_fused_peer(case: Case, module, x: np.ndarray) -> dict[str, Runner]:
    """jaxrnn on its XLA fused kernel (hand-written backward), whatever ``auto`` would pick."""
    return jaxrnn_peer(case, module, x, backend="fused")


def jaxrnn_onednn_peer(case: Case, module, x: np.ndarray) -> dict[str, Runner] | None:
    """jaxrnn on the native oneDNN kernel (``None`` without the optional plugin)."""
    if "onednn" not in jaxrnn.kernels.names():
        return None
    return jaxrnn_peer(case, module, x, backend="onednn")


PEERS: dict[str, Callable] = {
    "jaxrnn": jaxrnn_peer,
    "jaxrnn-fused": jaxrnn_fused_peer,
    "jaxrnn-onednn": jaxrnn_onednn_peer,
    "jaxrnn-scan": jaxrnn_generic_peer,
    "jaxrnn-bf16": jaxrnn_bf16_peer,
    "torch": torch_peer,
    "flax.linen": linen_peer,
    "flax.nnx": nnx_peer,
    "jax.experimental.rnn": jax_cudnn_peer,
}


def build(name: str, case: Case, module, x: np.ndarray) -> dict[str, Runner] | None:
    """The runners of peer ``name`` for ``case``, or ``None`` if it does not run here."""
    if name == "torch":
        return torch_peer(case, module, x, "cuda" if _torch().cuda.is_available() else "cpu")
    return PEERS[name](case, module, x)
