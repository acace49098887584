"""``flax.linen`` modules with ``torch.nn.{RNN,LSTM,GRU}``'s constructor and parameter names.

:class:`Recurrent` runs any registered family (:mod:`jaxrnn.families`): it declares the
parameters under PyTorch's state_dict names and calls :func:`jaxrnn.functional.layer`; there
is no other logic here. :class:`RNN`, :class:`LSTM`, :class:`GRU` and the other named layers
only fix the family. So ``LSTM(...).apply({"params": jaxrnn.interop.from_torch(torch_lstm)},
x)`` reproduces ``torch_lstm(x)``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxrnn import attention, crf, families, functional
from jaxrnn.params import Layout, RecurrentInit, check_constructor, init_param

Array = jax.Array


def _pairs(options: Any, **fields: Any) -> tuple[tuple[str, Any], ...]:
    """A module's ``options`` (pairs or a mapping) with its own option fields, as sorted
    pairs; :class:`~jaxrnn.params.Layout` checks the names and values."""
    given = dict(options.items() if isinstance(options, Mapping) else options)
    return tuple(sorted((given | fields).items()))


class Recurrent(nn.Module):
    """Any registered family as a stacked layer: ``x (T, B, I) -> (output, final state)``.

    The fields are PyTorch's constructor arguments, then jaxrnn's own; the named layers
    (:class:`LSTM`, :class:`GRU`, ...) only fix ``family``. Call the module as
    :meth:`__call__` says; ``method="step"`` runs one time step.

    Args:
        hidden_size: features of the state ``h`` (``H``).
        num_layers: stacked layers (``L``); each reads the layer below's output.
        bias: whether the layers have the ``bias_*`` parameters.
        batch_first: ``x`` and ``output`` are ``(B, T, ...)`` instead of ``(T, B, ...)``.
        dropout: dropout rate on the outputs of every layer but the last (PyTorch's).
        bidirectional: add a reverse direction per layer (``D = 2``), outputs concatenated.
        proj_size: LSTM only: project ``h`` to this size (``P``); ``0``: no projection.
        family: a registered family name (:func:`jaxrnn.families.names`).
        options: the family's own shape options, as ``(name, value)`` pairs.
        deterministic: dropout off; may also be given to the call. Dropout needs a
            ``"dropout"`` rng.
        recurrent_init: ``"uniform"`` (PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``) or
            ``"orthogonal"`` for the recurrent matrices.
        unroll: time steps unrolled per scan iteration (:class:`jaxrnn.functional.Options`).
        param_dtype: dtype of the parameters.
        input_dropout: variational dropout on each layer's input, one mask per sequence.
        recurrent_dropout: variational dropout on ``h`` where it enters the recurrence.
        remat: rematerialise the scan's steps in the backward pass (memory for compute).
        matmul_dtype: dtype of the matmul operands (e.g. ``jnp.bfloat16``); ``None``: as
            the parameters.
        backend: the kernel (``"auto"``, ``"scan"``, ``"fused"``, ``"parallel"``, ...; see
            :mod:`jaxrnn.kernels`).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrnn.linen import Recurrent
        >>> layer = Recurrent(8, family="layernorm_lstm", bidirectional=True)
        >>> x = jnp.ones((5, 4, 3))
        >>> y, (h_n, c_n) = layer.apply(layer.init(jax.random.key(0), x), x)
        >>> y.shape, h_n.shape
        ((5, 4, 16), (2, 4, 8))
    """

    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    family: str = ""
    options: tuple[tuple[str, Any], ...] = ()
    deterministic: bool | None = None
    recurrent_init: RecurrentInit = "uniform"
    unroll: int | bool | str = "auto"
    param_dtype: Any = jnp.float32
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    remat: int | bool | None = None
    matmul_dtype: Any = None
    backend: str = "auto"

    def __post_init__(self) -> None:
        check_constructor(
            input_size=None, hidden_size=self.hidden_size, num_layers=self.num_layers,
            bias=self.bias, batch_first=self.batch_first, dropout=self.dropout,
            bidirectional=self.bidirectional, proj_size=self.proj_size,
        )  # fmt: skip
        super().__post_init__()

    def family_name(self) -> str:
        return self.family

    def _layout(self, input_size: int) -> Layout:
        return Layout(
            self.family_name(), input_size, self.hidden_size, self.num_layers, self.bias,
            self.bidirectional, self.proj_size, _pairs(self.options),
        )  # fmt: skip

    @nn.compact
    def __call__(
        self,
        x: Array,
        hx: Any = None,
        *,
        lengths: Array | None = None,
        resets: Array | None = None,
        deterministic: bool | None = None,
    ) -> tuple[Array, Any]:
        """Run the layer over a sequence: ``x (T, B, I) -> (output (T, B, D*H), state)``.

        Args:
            x: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, or unbatched ``(T, I)``.
            hx: the initial state stacked like PyTorch's ``h_0`` (``(D*L, B, H)``, or a
                tuple such as ``(h_0, c_0)``); zeros if ``None``.
            lengths: ``(B,)`` ints in ``[1, T]``: PyTorch's packed-sequence semantics.
            resets: ``(T, B)`` bool: the state restarts from zeros before each step where
                true.
            deterministic: dropout off (overrides the field).

        Returns:
            ``(output, final state)`` as :func:`jaxrnn.functional.layer` returns them.
        """
        layout = self._layout(x.shape[-1])
        layout.spec.check_sizes(layout.sizes(0))
        names = list(layout.shapes())
        if not self.is_initializing() and all(self.has_variable("params", n) for n in names):
            # Bound: hand the stored parameters to the functional layer, whose checks name a
            # mismatched input (flax's own shape check would blame the initializer).
            params = {name: self.get_variable("params", name) for name in names}
        else:
            params = self._declare(layout)
        key = None
        rates = (self.dropout, self.input_dropout, self.recurrent_dropout)
        if max(rates) > 0.0 and not nn.merge_param(
            "deterministic", self.deterministic, deterministic
        ):
            key = self.make_rng("dropout")
        return functional.layer(
            layout.spec, params, x, hx, lengths=lengths, resets=resets,
            batch_first=self.batch_first, key=key, dropout=self.dropout,
            input_dropout=self.input_dropout, recurrent_dropout=self.recurrent_dropout,
            unroll=self.unroll, remat=self.remat, matmul_dtype=self.matmul_dtype,
            backend=self.backend,
        )  # fmt: skip

    def _declare(self, layout: Layout) -> dict[str, Array]:
        return {
            name: self.param(
                name,
                functools.partial(
                    init_param,
                    name=name,
                    layout=layout,
                    recurrent_init=self.recurrent_init,
                    dtype=self.param_dtype,
                ),
                shape,
            )
            for name, shape in layout.shapes().items()
        }

    def step(
        self,
        x: Array,
        state: Any = None,
        *,
        resets: Array | None = None,
        deterministic: bool | None = None,
    ) -> tuple[Array, Any]:
        """One time step, ``x (B, I), state -> (y (B, H_out), state)``, for
        ``model.apply(variables, x, state, method="step")``; unidirectional only (see
        :func:`jaxrnn.functional.step`). ``state=None`` starts from zeros; ``resets (B,)``
        bool restarts those sequences from zeros at this step."""
        spec = families.get(self.family_name())
        resets = functional.check_step(spec, self.bidirectional, x, resets)
        return functional.one_step(
            self, x, state, resets, self.batch_first, deterministic=deterministic
        )


class RNN(Recurrent):
    """Elman RNN, ``torch.nn.RNN``: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``.

    ``nonlinearity`` is ``"tanh"`` or ``"relu"``; everything else as :class:`Recurrent`.
    """

    nonlinearity: Literal["tanh", "relu"] = "tanh"

    def __post_init__(self) -> None:
        # torch.nn.RNN checks the nonlinearity first, at construction.
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        super().__post_init__()

    def family_name(self) -> str:
        return f"rnn_{self.nonlinearity}"


class LSTM(Recurrent):
    """LSTM, ``torch.nn.LSTM``: ``x (T, B, I) -> (output (T, B, D*P), (h_n (D*L, B, P),
    c_n (D*L, B, H)))``; ``proj_size > 0`` adds PyTorch's output projection (``P``)."""

    family: str = families.lstm.LSTM.name


class GRU(Recurrent):
    """GRU, ``torch.nn.GRU``: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``."""

    family: str = families.gru.GRU.name


class LayerNormLSTM(Recurrent):
    """Layer-normalised LSTM (Ba et al. 2016; :mod:`jaxrnn.families.layernorm_lstm`), with
    :class:`LSTM`'s shapes (no projection)."""

    family: str = families.layernorm_lstm.LAYERNORM_LSTM.name


class ConvLSTM(Recurrent):
    """Convolutional LSTM (Shi et al. 2015; :mod:`jaxrnn.families.convlstm`):
    ``x (T, B, Hs, Ws, C_in) -> (output (T, B, Hs, Ws, D*C), (h_n, c_n))``; ``hidden_size``
    is the channel count ``C``, ``kernel_size`` an int or ``(kh, kw)``."""

    family: str = families.convlstm.CONVLSTM.name
    kernel_size: int | tuple[int, int] = 3

    def _layout(self, input_size: int) -> Layout:
        k = self.kernel_size
        kernel = (k, k) if isinstance(k, int) else tuple(k)
        return Layout(
            self.family, input_size, self.hidden_size, self.num_layers, self.bias,
            self.bidirectional, self.proj_size, _pairs(self.options, kernel_size=kernel),
        )  # fmt: skip


class MinGRU(Recurrent):
    """minGRU (Feng et al. 2024; :mod:`jaxrnn.families.mingru`): ``x (T, B, I) ->
    (output (T, B, D*H), h_n (D*L, B, H))``; a linear recurrence (parallel-in-time kernels)."""

    family: str = families.mingru.MINGRU.name


class MinLSTM(Recurrent):
    """minLSTM (Feng et al. 2024; :mod:`jaxrnn.families.minlstm`), shapes as :class:`MinGRU`."""

    family: str = families.minlstm.MINLSTM.name


class LRU(Recurrent):
    """Linear Recurrent Unit (Orvieto et al. 2023; :mod:`jaxrnn.families.lru`):
    ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, N) complex)``; ``state_size`` is ``N``
    (``0``: ``hidden_size``)."""

    family: str = families.lru.LRU.name
    state_size: int = 0

    def _layout(self, input_size: int) -> Layout:
        return Layout(
            self.family, input_size, self.hidden_size, self.num_layers, self.bias,
            self.bidirectional, self.proj_size,
            _pairs(self.options, state_size=0 if self.state_size == self.hidden_size
                   else self.state_size),
        )  # fmt: skip


class RGLRU(Recurrent):
    """Real-Gated LRU of Griffin/Hawk (De et al. 2024; :mod:`jaxrnn.families.rglru`), shapes
    as :class:`MinGRU`."""

    family: str = families.rglru.RGLRU.name


class SLSTM(Recurrent):
    """sLSTM of xLSTM (Beck et al. 2024; :mod:`jaxrnn.families.slstm`): ``x (T, B, I) ->
    (output (T, B, D*H), (h_n, c_n, n_n, m_n) each (D*L, B, H))``; ``num_heads`` blocks of
    the recurrent matrix (must divide ``hidden_size``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrnn.linen import SLSTM
        >>> layer = SLSTM(8, num_heads=2)
        >>> x = jnp.ones((5, 4, 3))
        >>> y, (h_n, c_n, n_n, m_n) = layer.apply(layer.init(jax.random.key(0), x), x)
        >>> y.shape, m_n.shape
        ((5, 4, 8), (1, 4, 8))
    """

    family: str = families.slstm.SLSTM.name
    num_heads: int = 1

    def _layout(self, input_size: int) -> Layout:
        return Layout(
            self.family, input_size, self.hidden_size, self.num_layers, self.bias,
            self.bidirectional, self.proj_size, (("num_heads", self.num_heads),),
        )  # fmt: skip


class MLSTM(SLSTM):
    """mLSTM of xLSTM (Beck et al. 2024; :mod:`jaxrnn.families.mlstm`): ``x (T, B, I) ->
    (output (T, B, D*H), (C_n (D*L, B, NH, DH, DH), n_n (D*L, B, NH, DH), m_n (D*L, B, NH)))``
    with ``NH = num_heads``, ``DH = hidden_size / NH``; runs chunkwise by default.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxrnn.linen import MLSTM
        >>> layer = MLSTM(8, num_heads=2)
        >>> x = jnp.ones((5, 4, 3))
        >>> y, (c_n, n_n, m_n) = layer.apply(layer.init(jax.random.key(0), x), x)
        >>> y.shape, c_n.shape
        ((5, 4, 8), (1, 4, 2, 4, 4))
    """

    family: str = families.mlstm.MLSTM.name


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


class CRF(nn.Module):
    """Linear-chain CRF head (see :mod:`jaxrnn.crf`): ``__call__`` gives the log-likelihood
    ``(B,)`` of ``tags (B, T)`` given ``emissions (B, T, K)``; ``decode`` the Viterbi paths
    ``(B, T)`` and scores ``(B,)``. Parameters ``transitions (K, K)``, ``start``, ``end``
    ``(K,)`` (``pytorch-crf``'s names and init); ``constraints`` (e.g.
    ``jaxrnn.crf.bio_constraints(tag_names)``) apply to training and decoding alike.

    Examples:
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
