"""``flax.nnx`` modules with ``torch.nn.{RNN,LSTM,GRU}``'s constructor and parameter names.

Parameters are attributes named as in PyTorch's state_dict (``model.weight_ih_l0``), so
``model.load_state_dict(jaxrnn.interop.from_torch(torch_lstm))`` loads PyTorch weights and
``model.state_dict()`` gives them back. The call is the matching :mod:`jaxrnn.functional`
function. Dropout between layers runs in ``train()`` mode and is off after ``eval()``; so do
the keyword options ``input_dropout`` and ``recurrent_dropout`` (variational dropout, one mask
per sequence shared by all time steps, see :mod:`jaxrnn.dropout`). ``remat=`` (a chunk length,
or ``True`` for ``ceil(√T)``) checkpoints the time loop in chunks for long sequences, and
``matmul_dtype=jnp.bfloat16`` runs the matmuls in bf16 with float32 sums (mixed precision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from jaxrnn import attention, functional
from jaxrnn.dropout import check_rate
from jaxrnn.params import Layout, RecurrentInit, init_params, layout_of

Array = jax.Array


class _Recurrent(nnx.Module):
    mode: ClassVar[str]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        *,
        recurrent_init: RecurrentInit = "uniform",
        unroll: int = 1,
        param_dtype: Any = jnp.float32,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        remat: int | bool | None = None,
        matmul_dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        check_rate("dropout", dropout)
        check_rate("input_dropout", input_dropout)
        check_rate("recurrent_dropout", recurrent_dropout)
        self.layout = Layout(
            self.mode, input_size, hidden_size, num_layers, bias, bidirectional, proj_size
        )
        self.batch_first = batch_first
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.recurrent_dropout = recurrent_dropout
        self.unroll = unroll
        self.remat = remat
        self.matmul_dtype = matmul_dtype
        self.deterministic = False
        params = init_params(
            rngs.params(), self.layout, recurrent_init=recurrent_init, dtype=param_dtype
        )
        for name, value in params.items():
            setattr(self, name, nnx.Param(value))
        stochastic = max(dropout, input_dropout, recurrent_dropout) > 0.0
        self.rngs = rngs.fork() if stochastic else nnx.data(None)

    def state_dict(self) -> dict[str, Array]:
        """The parameters under PyTorch's names (see :func:`jaxrnn.interop.to_torch`)."""
        return {name: getattr(self, name)[...] for name in self.layout.shapes()}

    def load_state_dict(self, params: Mapping[str, Array]) -> None:
        """Replace every parameter from a PyTorch-named mapping of the same layout."""
        layout = layout_of(self.mode, params)
        if layout != self.layout:
            raise ValueError(f"params describe {layout}, but this module is {self.layout}")
        for name in self.layout.shapes():
            getattr(self, name)[...] = jnp.asarray(params[name])

    def _key(self, deterministic: bool | None) -> Array | None:
        deterministic = self.deterministic if deterministic is None else deterministic
        if max(self.dropout, self.input_dropout, self.recurrent_dropout) == 0.0 or deterministic:
            return None
        return self.rngs.dropout()


class RNN(_Recurrent):
    """Elman RNN: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*num_layers, B, H))``."""

    mode: ClassVar[str] = "rnn"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: Literal["tanh", "relu"] = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        recurrent_init: RecurrentInit = "uniform",
        unroll: int = 1,
        param_dtype: Any = jnp.float32,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        remat: int | bool | None = None,
        matmul_dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            recurrent_init=recurrent_init, unroll=unroll, param_dtype=param_dtype,
            input_dropout=input_dropout, recurrent_dropout=recurrent_dropout, remat=remat,
            matmul_dtype=matmul_dtype, rngs=rngs,
        )  # fmt: skip

    def __call__(
        self,
        x: Array,
        hx: Array | None = None,
        *,
        lengths: Array | None = None,
        deterministic: bool | None = None,
    ) -> tuple[Array, Array]:
        return functional.rnn(
            self.state_dict(), x, hx, nonlinearity=self.nonlinearity, lengths=lengths,
            batch_first=self.batch_first, dropout=self.dropout,
            key=self._key(deterministic), unroll=self.unroll,
            input_dropout=self.input_dropout, recurrent_dropout=self.recurrent_dropout,
            remat=self.remat, matmul_dtype=self.matmul_dtype,
        )  # fmt: skip


class LSTM(_Recurrent):
    """LSTM: ``x (T, B, I) -> (output (T, B, D*P), (h_n (D*L, B, P), c_n (D*L, B, H)))``."""

    mode: ClassVar[str] = "lstm"

    def __call__(
        self,
        x: Array,
        hx: tuple[Array, Array] | None = None,
        *,
        lengths: Array | None = None,
        deterministic: bool | None = None,
    ) -> tuple[Array, tuple[Array, Array]]:
        return functional.lstm(
            self.state_dict(), x, hx, lengths=lengths, batch_first=self.batch_first,
            dropout=self.dropout, key=self._key(deterministic), unroll=self.unroll,
            input_dropout=self.input_dropout, recurrent_dropout=self.recurrent_dropout,
            remat=self.remat, matmul_dtype=self.matmul_dtype,
        )  # fmt: skip


class GRU(_Recurrent):
    """GRU: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*num_layers, B, H))``."""

    mode: ClassVar[str] = "gru"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        recurrent_init: RecurrentInit = "uniform",
        unroll: int = 1,
        param_dtype: Any = jnp.float32,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        remat: int | bool | None = None,
        matmul_dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            recurrent_init=recurrent_init, unroll=unroll, param_dtype=param_dtype,
            input_dropout=input_dropout, recurrent_dropout=recurrent_dropout, remat=remat,
            matmul_dtype=matmul_dtype, rngs=rngs,
        )  # fmt: skip

    def __call__(
        self,
        x: Array,
        hx: Array | None = None,
        *,
        lengths: Array | None = None,
        deterministic: bool | None = None,
    ) -> tuple[Array, Array]:
        return functional.gru(
            self.state_dict(), x, hx, lengths=lengths, batch_first=self.batch_first,
            dropout=self.dropout, key=self._key(deterministic), unroll=self.unroll,
            input_dropout=self.input_dropout, recurrent_dropout=self.recurrent_dropout,
            remat=self.remat, matmul_dtype=self.matmul_dtype,
        )  # fmt: skip


class AdditiveAttention(nnx.Module):
    """Bahdanau attention: ``(query (B, Hq), keys (B, T, Hk), lengths) -> (context, weights)``.

    ``score_t = v · tanh(W_q query + W_k keys_t + bias)``; parameters ``weight_query``,
    ``weight_key``, ``bias``, ``v``. See :func:`jaxrnn.attention.additive_attention`.
    """

    def __init__(
        self,
        query_size: int,
        key_size: int,
        features: int,
        *,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        params = attention.init_additive(
            rngs.params(), query_size, key_size, features, dtype=param_dtype
        )
        for name, value in params.items():
            setattr(self, name, nnx.Param(value))

    def __call__(
        self, query: Array, keys: Array, lengths: Array | None = None
    ) -> tuple[Array, Array]:
        params = {name: getattr(self, name)[...] for name in attention.ADDITIVE_NAMES}
        return attention.additive_attention(params, query, keys, lengths)


class DotProductAttention(nnx.Module):
    """Luong "dot" attention, no parameters: ``(query, keys, lengths) -> (context, weights)``."""

    def __init__(self, *, scale: bool = False):
        self.scale = scale

    def __call__(
        self, query: Array, keys: Array, lengths: Array | None = None
    ) -> tuple[Array, Array]:
        return attention.dot_product_attention(query, keys, lengths, scale=self.scale)


import numpy as np  # noqa: E402  (kept with CRF at the end of the file)

from jaxrnn import crf  # noqa: E402


class CRF(nnx.Module):
    """Linear-chain CRF head (see :mod:`jaxrnn.crf`): ``model(emissions (B, T, K), tags (B, T),
    lengths)`` gives the log-likelihood ``(B,)``; ``model.decode(emissions, lengths)`` the
    Viterbi paths ``(B, T)`` and scores ``(B,)``. Parameters ``transitions (K, K)``, ``start``,
    ``end`` ``(K,)`` (``pytorch-crf``'s names and init); ``constraints`` (e.g.
    ``jaxrnn.crf.bio_constraints(tag_names)``) apply to training and decoding alike.

    >>> model = CRF(3, constraints=crf.bio_constraints(["O", "B-x", "I-x"]), rngs=nnx.Rngs(0))
    >>> e, y = jnp.zeros((2, 4, 3)), jnp.zeros((2, 4), jnp.int32)
    >>> nll = -model(e, y, jnp.array([4, 2])).mean()
    >>> paths, scores = model.decode(e)
    """

    def __init__(
        self,
        num_tags: int,
        *,
        start_end: bool = True,
        constraints: crf.Constraints | None = None,
        method: crf.Method = "auto",
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        params = crf.init_params(rngs.params(), num_tags, start_end=start_end, dtype=param_dtype)
        self.names = tuple(params)
        for name, value in params.items():
            setattr(self, name, nnx.Param(value))
        # plain tuples: static metadata, not arrays, for nnx's graph
        self.constraints = None if constraints is None else tuple(map(_as_nested, constraints))
        self.method: crf.Method = method

    def _args(self) -> tuple[dict[str, Array], crf.Constraints | None]:
        params = {name: getattr(self, name)[...] for name in self.names}
        c = self.constraints
        return params, None if c is None else crf.Constraints(*(np.array(x) for x in c))

    def __call__(self, emissions: Array, tags: Array, lengths: Array | None = None) -> Array:
        params, c = self._args()
        return crf.log_likelihood(
            params, emissions, tags, lengths, constraints=c, method=self.method
        )

    def decode(self, emissions: Array, lengths: Array | None = None) -> tuple[Array, Array]:
        params, c = self._args()
        return crf.viterbi_decode(params, emissions, lengths, constraints=c, method=self.method)


def _as_nested(x) -> tuple:
    return tuple(np.asarray(x).tolist())
