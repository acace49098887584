"""Recurrent cells as pure functions: ``cell(params, carry, x) -> (carry, y)``.

A cell advances one time step. ``params`` is a mapping with PyTorch's per-layer names
(``weight_ih``, ``weight_hh``, optional ``bias_ih``/``bias_hh``, and ``weight_hr`` for an
LSTM with projection); ``x`` is ``(B, I)`` and every array in ``carry`` is ``(B, ·)``. Each
cell is its family's reference step (:mod:`jaxrnn.families`); this module gathers them under
one name. Any function with this signature runs through :func:`jaxrnn.scan.scan` and
:func:`jaxrnn.functional.stack`.
"""

from jaxrnn.families.base import Array, Carry, Cell, Params, gate_preactivations, linear
from jaxrnn.families.convlstm import convlstm_cell
from jaxrnn.families.gru import gru_cell, gru_update
from jaxrnn.families.layernorm_lstm import layernorm_lstm_cell
from jaxrnn.families.lstm import lstm_cell
from jaxrnn.families.rnn import rnn_relu_cell, rnn_tanh_cell

__all__ = [
    "Array",
    "Carry",
    "Cell",
    "Params",
    "convlstm_cell",
    "gate_preactivations",
    "gru_cell",
    "gru_update",
    "layernorm_lstm_cell",
    "linear",
    "lstm_cell",
    "rnn_relu_cell",
    "rnn_tanh_cell",
]
