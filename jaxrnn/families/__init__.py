"""The registry of recurrence families: one file each, one line each here.

A family (:class:`~jaxrnn.families.base.Family`) is everything the layers need to run one
recurrence. To add one, write ``jaxrnn/families/<name>.py`` defining its ``Family`` value and
register it below; :func:`jaxrnn.functional.layer`, :class:`jaxrnn.linen.Recurrent` and
:class:`jaxrnn.nnx.Recurrent` then run it, stacked, bidirectional, with ``lengths``, resets and
dropout, and the conformance tests pick it up.
"""

from __future__ import annotations

from jaxrnn.families import (
    convlstm,
    gru,
    layernorm_lstm,
    lru,
    lstm,
    mingru,
    minlstm,
    mlstm,
    rglru,
    rnn,
    slstm,
)
from jaxrnn.families.base import Family, Fused, Linear, Sizes, custom

_REGISTRY: dict[str, Family] = {}
# Names from before the registry (jaxrnn 0.1's Layout("rnn", ...)) keep working.
_ALIASES = {"rnn": "rnn_tanh"}


def register(family: Family) -> Family:
    """Add ``family`` under ``family.name`` (a name can be registered once)."""
    if family.name in _REGISTRY and _REGISTRY[family.name] is not family:
        raise ValueError(f"a family named {family.name!r} is already registered")
    _REGISTRY[family.name] = family
    return family


def get(family: str | Family) -> Family:
    """The registered family of that name (a :class:`Family` passes through)."""
    if isinstance(family, Family):
        return family
    family = _ALIASES.get(family, family)
    if family not in _REGISTRY:
        raise ValueError(f"unknown family {family!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[family]


def names() -> list[str]:
    """The names of every registered family."""
    return sorted(_REGISTRY)


for _family in (
    rnn.RNN_TANH,
    rnn.RNN_RELU,
    lstm.LSTM,
    gru.GRU,
    layernorm_lstm.LAYERNORM_LSTM,
    convlstm.CONVLSTM,
    mingru.MINGRU,
    minlstm.MINLSTM,
    lru.LRU,
    rglru.RGLRU,
    slstm.SLSTM,
    mlstm.MLSTM,
):
    register(_family)

__all__ = ["Family", "Fused", "Linear", "Sizes", "custom", "get", "names", "register"]
