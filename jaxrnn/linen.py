"""``flax.linen`` modules with ``torch.nn.{RNN,LSTM,GRU}``'s constructor and parameter names.

Each module declares its parameters under PyTorch's state_dict names and calls the matching
function of :mod:`jaxrnn.functional`; there is no other logic here. So
``LSTM(...).apply({"params": jaxrnn.interop.from_torch(torch_lstm)}, x)`` reproduces
``torch_lstm(x)``.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrnn import attention, functional
from jaxrnn.params import Layout, RecurrentInit, init_param

Array = jax.Array


class _Recurrent(nn.Module):
    """Shared fields of :class:`RNN`, :class:`LSTM` and :class:`GRU` (PyTorch's, plus three)."""

    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    deterministic: bool | None = None
    recurrent_init: RecurrentInit = "uniform"
    unroll: int = 1
    param_dtype: Any = jnp.float32
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    remat: int | bool | None = None
    matmul_dtype: Any = None

    mode: ClassVar[str]

    def _layout(self, input_size: int) -> Layout:
        return Layout(
            self.mode,
            input_size,
            self.hidden_size,
            self.num_layers,
            self.bias,
            self.bidirectional,
            getattr(self, "proj_size", 0),
        )

    def _params_and_key(self, x: Array, deterministic: bool | None):
        layout = self._layout(x.shape[-1])
        params = {
            name: self.param(
                name,
                functools.partial(
                    init_param,
                    name=name,
                    hidden_size=self.hidden_size,
                    recurrent_init=self.recurrent_init,
                    dtype=self.param_dtype,
                ),
                shape,
            )
            for name, shape in layout.shapes().items()
        }
        key = None
        rates = (self.dropout, self.input_dropout, self.recurrent_dropout)
        if max(rates) > 0.0 and not nn.merge_param(
            "deterministic", self.deterministic, deterministic
        ):
            key = self.make_rng("dropout")
        return params, key


class RNN(_Recurrent):
    """Elman RNN: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*num_layers, B, H))``.

    ``lengths`` (``(B,)``) gives PyTorch's packed-sequence semantics. Dropout between layers
    runs when ``deterministic=False`` (field or call argument) with a ``"dropout"`` rng, as
    do ``input_dropout`` and ``recurrent_dropout``: variational dropout with one mask per
    sequence shared by all time steps (:mod:`jaxrnn.dropout`), on each layer's input and on
    ``h`` where it enters ``W_hh``. ``remat`` (a chunk length, or ``True`` for ``ceil(√T)``)
    checkpoints the time loop in chunks to bound activation memory on long sequences;
    ``matmul_dtype`` (e.g. ``jnp.bfloat16``) runs the matmuls on operands of that dtype with
    float32 sums (mixed precision, :func:`jaxrnn.scan.scan`). The same fields exist on
    :class:`LSTM` and :class:`GRU`.
    """

    nonlinearity: Literal["tanh", "relu"] = "tanh"
    mode: ClassVar[str] = "rnn"

    @nn.compact
    def __call__(
        self,
        x: Array,
        hx: Array | None = None,
        *,
        lengths: Array | None = None,
        deterministic: bool | None = None,
    ) -> tuple[Array, Array]:
        params, key = self._params_and_key(x, deterministic)
        return functional.rnn(
            params, x, hx, nonlinearity=self.nonlinearity, lengths=lengths,
            batch_first=self.batch_first, dropout=self.dropout, key=key, unroll=self.unroll,
            input_dropout=self.input_dropout, recurrent_dropout=self.recurrent_dropout,
            remat=self.remat, matmul_dtype=self.matmul_dtype,
        )  # fmt: skip


class LSTM(_Recurrent):
    """LSTM: ``x (T, B, I) -> (output (T, B, D*P), (h_n (D*L, B, P), c_n (D*L, B, H)))``.

    ``proj_size > 0`` adds PyTorch's output projection ``weight_hr`` (``P = proj_size``,
    otherwise ``P = hidden_size``).
    """

    proj_size: int = 0
    mode: ClassVar[str] = "lstm"

    @nn.compact
    def __call__(
        self,
        x: Array,
        hx: tuple[Array, Array] | None = None,
        *,
        lengths: Array | None = None,
        deterministic: bool | None = None,
    ) -> tuple[Array, tuple[Array, Array]]:
        params, key = self._params_and_key(x, deterministic)
        return functional.lstm(
            params, x, hx, lengths=lengths, batch_first=self.batch_first,
            dropout=self.dropout, key=key, unroll=self.unroll,
            input_dropout=self.input_dropout, recurrent_dropout=self.recurrent_dropout,
            remat=self.remat, matmul_dtype=self.matmul_dtype,
        )  # fmt: skip


class GRU(_Recurrent):
    """GRU: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*num_layers, B, H))``."""

    mode: ClassVar[str] = "gru"

    @nn.compact
    def __call__(
        self,
        x: Array,
        hx: Array | None = None,
        *,
        lengths: Array | None = None,
        deterministic: bool | None = None,
    ) -> tuple[Array, Array]:
        params, key = self._params_and_key(x, deterministic)
        return functional.gru(
            params, x, hx, lengths=lengths, batch_first=self.batch_first,
            dropout=self.dropout, key=key, unroll=self.unroll,
            input_dropout=self.input_dropout, recurrent_dropout=self.recurrent_dropout,
            remat=self.remat, matmul_dtype=self.matmul_dtype,
        )  # fmt: skip


class AdditiveAttention(nn.Module):
    """Bahdanau attention: ``(query (B, Hq), keys (B, T, Hk), lengths) -> (context, weights)``.

    ``score_t = v · tanh(W_q query + W_k keys_t + bias)`` with ``features`` = the size of
    ``v``; ``query`` may also be ``(B, S, Hq)``. See :func:`jaxrnn.attention.additive_attention`.
    """

    features: int
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self, query: Array, keys: Array, lengths: Array | None = None
    ) -> tuple[Array, Array]:
        shapes = attention.additive_shapes(query.shape[-1], keys.shape[-1], self.features)
        params = {
            name: self.param(name, attention.init_additive_param, shape, self.param_dtype)
            for name, shape in shapes.items()
        }
        return attention.additive_attention(params, query, keys, lengths)


class DotProductAttention(nn.Module):
    """Luong "dot" attention, no parameters: ``(query, keys, lengths) -> (context, weights)``.

    See :func:`jaxrnn.attention.dot_product_attention`; ``scale=True`` divides by ``sqrt(H)``.
    """

    scale: bool = False

    def __call__(
        self, query: Array, keys: Array, lengths: Array | None = None
    ) -> tuple[Array, Array]:
        return attention.dot_product_attention(query, keys, lengths, scale=self.scale)


from jaxrnn import crf  # noqa: E402  (kept with CRF at the end of the file)


class CRF(nn.Module):
    """Linear-chain CRF head (see :mod:`jaxrnn.crf`): ``__call__`` gives the log-likelihood
    ``(B,)`` of ``tags (B, T)`` given ``emissions (B, T, K)``; :meth:`decode` the Viterbi paths
    ``(B, T)`` and scores ``(B,)``. Parameters ``transitions (K, K)``, ``start``, ``end``
    ``(K,)`` (``pytorch-crf``'s names and init); ``constraints`` (e.g.
    ``jaxrnn.crf.bio_constraints(tag_names)``) apply to training and decoding alike.

    >>> model = CRF(3, constraints=crf.bio_constraints(["O", "B-x", "I-x"]))
    >>> e, y = jnp.zeros((2, 4, 3)), jnp.zeros((2, 4), jnp.int32)
    >>> variables = model.init(jax.random.key(0), e, y)
    >>> nll = -model.apply(variables, e, y, jnp.array([4, 2])).mean()
    >>> paths, scores = model.apply(variables, e, method=CRF.decode)
    """

    num_tags: int
    start_end: bool = True
    constraints: crf.Constraints | None = None
    method: crf.Method = "auto"
    param_dtype: Any = jnp.float32

    def setup(self):
        def uniform(key, shape, dtype):
            return jax.random.uniform(key, shape, dtype, -0.1, 0.1)

        k = self.num_tags
        names = ("transitions", "start", "end") if self.start_end else ("transitions",)
        shapes = {"transitions": (k, k), "start": (k,), "end": (k,)}
        self.crf_params = {n: self.param(n, uniform, shapes[n], self.param_dtype) for n in names}

    def __call__(self, emissions: Array, tags: Array, lengths: Array | None = None) -> Array:
        return crf.log_likelihood(
            self.crf_params, emissions, tags, lengths,
            constraints=self.constraints, method=self.method,
        )  # fmt: skip

    def decode(self, emissions: Array, lengths: Array | None = None) -> tuple[Array, Array]:
        return crf.viterbi_decode(
            self.crf_params, emissions, lengths, constraints=self.constraints, method=self.method
        )
