"""Move recurrent-layer weights between PyTorch and jaxrnn; the names never change.

torch is imported only inside these functions, so ``import jaxrnn`` works without it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def from_torch(module_or_state_dict: Any) -> dict[str, jax.Array]:
    """A ``torch.nn.{RNN,LSTM,GRU}`` (or its state_dict) as a dict of JAX arrays, same names.

    The result is what :func:`jaxrnn.functional.lstm` and friends, and the ``params`` of the
    Flax modules, take. dtypes are kept (bfloat16 included), except that float64 becomes
    float32, with a warning, unless JAX's x64 mode is on.

    Args:
        module_or_state_dict: a ``torch.nn.RNN``, ``LSTM`` or ``GRU``, or a mapping of names
            to tensors such as its ``state_dict()``.

    Returns:
        ``{name: jax.Array}`` with the state_dict's names and shapes, e.g.
        ``weight_ih_l0 (G*H, I)``, ``weight_hh_l0 (G*H, H)``, ``bias_ih_l0 (G*H,)`` with
        ``G`` = 1, 4 or 3 gates for RNN, LSTM, GRU.

    Examples:
        >>> import torch, jaxrnn
        >>> params = jaxrnn.interop.from_torch(torch.nn.GRU(8, 16, num_layers=2))
        >>> params["weight_ih_l0"].shape, params["weight_hh_l1"].shape
        ((48, 8), (48, 16))
    """
    import torch

    state = (
        module_or_state_dict.state_dict()
        if isinstance(module_or_state_dict, torch.nn.Module)
        else module_or_state_dict
    )
    if not isinstance(state, Mapping):
        raise TypeError(
            "from_torch expects a torch.nn.Module or a state_dict mapping, "
            f"got {type(module_or_state_dict).__name__}"
        )
    out = {}
    narrowed = []
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}] is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            out[name] = jnp.asarray(tensor.float().numpy(), dtype=jnp.bfloat16)
        else:
            out[name] = jnp.asarray(tensor.numpy())
            if tensor.dtype == torch.float64 and out[name].dtype != jnp.float64:
                narrowed.append(name)
    if narrowed:
        warnings.warn(
            f"from_torch: {len(narrowed)} float64 tensors (e.g. {narrowed[0]!r}) became float32 "
            "because JAX's x64 mode is off; jax.config.update('jax_enable_x64', True) keeps them",
            UserWarning,
            stacklevel=2,
        )
    return out


def to_torch(params: Mapping[str, Any]) -> dict[str, Any]:
    """jaxrnn parameters as a state_dict that ``torch_module.load_state_dict(..., strict=True)``
    accepts: a dict of CPU ``torch.Tensor`` with the same names, shapes and dtypes.

    Args:
        params: a mapping of PyTorch names to arrays, e.g. the ``params`` of a jaxrnn layer
            or ``jaxrnn.nnx.LSTM(...).state_dict()``.

    Returns:
        ``{name: torch.Tensor}``, bfloat16 kept as ``torch.bfloat16``.

    Examples:
        >>> import jax, torch, jaxrnn
        >>> from jaxrnn.params import Layout, init_params
        >>> params = init_params(jax.random.key(0), Layout("lstm", 8, 16))
        >>> torch_lstm = torch.nn.LSTM(8, 16)
        >>> torch_lstm.load_state_dict(jaxrnn.interop.to_torch(params), strict=True)
        <All keys matched successfully>
    """
    import torch

    if not isinstance(params, Mapping):
        raise TypeError(
            f"to_torch expects a mapping of names to arrays, got {type(params).__name__}"
        )
    out = {}
    for name, value in params.items():
        value = jnp.asarray(value)
        if value.dtype == jnp.bfloat16:
            out[name] = torch.from_numpy(np.array(value.astype(jnp.float32))).to(torch.bfloat16)
        else:
            out[name] = torch.from_numpy(np.array(value))
    return out
