"""``flax.nnx`` modules with ``torch.nn.{RNN,LSTM,GRU}``'s constructor and parameter names.

:class:`Recurrent` runs any registered family (:mod:`jaxrnn.families`); :class:`RNN`,
:class:`LSTM`, :class:`GRU` and the other named layers only fix the family. Parameters are
attributes named as in PyTorch's state_dict (``model.weight_ih_l0``), so
``model.load_state_dict(jaxrnn.interop.from_torch(torch_lstm))`` loads PyTorch weights and
``model.state_dict()`` gives them back. The call is :func:`jaxrnn.functional.layer`. Dropout
(between layers, and the variational ``input_dropout``/``recurrent_dropout``) runs in
``train()`` mode and is off after ``eval()``; like PyTorch's, the rates are plain attributes
that may be changed at any time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrnn import attention, crf, families, functional
from jaxrnn.dropout import check_rate
from jaxrnn.params import Layout, RecurrentInit, check_constructor, init_params, layout_of

Array = jax.Array


class Recurrent(nnx.Module):
    """Any registered family as a stacked layer: ``x (T, B, I) -> (output, final state)``.

    Positional arguments are PyTorch's; the named layers (:class:`LSTM`, :class:`GRU`, ...)
    only fix ``family``. Parameters are attributes under PyTorch's state_dict names.

    Args:
        input_size: features of ``x`` (``I``).
        hidden_size: features of the state ``h`` (``H``).
        num_layers: stacked layers (``L``); each reads the layer below's output.
        bias: whether the layers have the ``bias_*`` parameters.
        batch_first: ``x`` and ``output`` are ``(B, T, ...)`` instead of ``(T, B, ...)``.
        dropout: dropout rate on the outputs of every layer but the last (PyTorch's), in
            ``train()`` mode.
        bidirectional: add a reverse direction per layer (``D = 2``), outputs concatenated.
        proj_size: LSTM only: project ``h`` to this size (``P``); ``0``: no projection.
        family: a registered family name (:func:`jaxrnn.families.names`); the named
            subclasses set it.
        options: the family's own shape options (``{"kernel_size": (3, 3)}``).
        recurrent_init: ``"uniform"`` (PyTorch's ``U(-1/sqrt(H), 1/sqrt(H))``) or
            ``"orthogonal"`` for the recurrent matrices.
        param_dtype: dtype of the parameters.
        input_dropout: variational dropout on each layer's input, one mask per sequence.
        recurrent_dropout: variational dropout on ``h`` where it enters the recurrence.
        unroll: time steps unrolled per scan iteration (:class:`jaxrnn.functional.Options`).
        remat: rematerialise the scan's steps in the backward pass (memory for compute).
        matmul_dtype: dtype of the matmul operands (e.g. ``jnp.bfloat16``); ``None``: as
            the parameters.
        backend: the kernel (``"auto"``, ``"scan"``, ``"fused"``, ``"parallel"``, ...; see
            :mod:`jaxrnn.kernels`).
        rngs: draws the parameters and, in ``train()`` mode, the dropout masks.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from jaxrnn.nnx import Recurrent
        >>> layer = Recurrent(3, 8, 2, family="layernorm_lstm", rngs=nnx.Rngs(0))
        >>> y, (h_n, c_n) = layer(jnp.ones((5, 4, 3)))
        >>> y.shape, h_n.shape
        ((5, 4, 8), (2, 4, 8))
    """

    family_name: ClassVar[str] = ""

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
        family: str | None = None,
        options: Mapping[str, Any] | None = None,
        recurrent_init: RecurrentInit = "uniform",
        param_dtype: Any = jnp.float32,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        unroll: int | bool | str = "auto",
        remat: int | bool | None = None,
        matmul_dtype: Any = None,
        backend: str = "auto",
        rngs: nnx.Rngs,
    ):
        check_constructor(
            input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, bias=bias,
            batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
            proj_size=proj_size,
        )  # fmt: skip
        check_rate("input_dropout", input_dropout)
        check_rate("recurrent_dropout", recurrent_dropout)
        spec = families.get(family or self.family_name)
        self.layout = Layout(
            spec.name, input_size, hidden_size, num_layers, bias, bidirectional, proj_size,
            tuple(sorted((options or {}).items())),
        )  # fmt: skip
        self.batch_first = batch_first
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.recurrent_dropout = recurrent_dropout
        self.unroll = unroll
        self.remat = remat
        self.matmul_dtype = matmul_dtype
        self.backend = backend
        self.deterministic = False
        params = init_params(
            rngs.params(), self.layout, recurrent_init=recurrent_init, dtype=param_dtype
        )
        for name, value in params.items():
            setattr(self, name, nnx.Param(value))
        # Kept even at rate 0, so that dropout can be switched on later, as in PyTorch.
        self.rngs = rngs.fork()

    def state_dict(self) -> dict[str, Array]:
        """The parameters under PyTorch's names (see :func:`jaxrnn.interop.to_torch`)."""
        return {name: getattr(self, name)[...] for name in self.layout.shapes()}

    def load_state_dict(self, params: Mapping[str, Array]) -> None:
        """Replace every parameter from a PyTorch-named mapping of the same layout."""
        layout = layout_of(self.layout.spec, params)
        if layout != self.layout:
            raise ValueError(f"params describe {layout}, but this module is {self.layout}")
        for name in self.layout.shapes():
            getattr(self, name)[...] = jnp.asarray(params[name])

    def _key(self, deterministic: bool | None) -> Array | None:
        deterministic = self.deterministic if deterministic is None else deterministic
        rates = (self.dropout, self.input_dropout, self.recurrent_dropout)
        if max(rates) == 0.0 or deterministic:
            return None
        return self.rngs.dropout()

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
            deterministic: dropout off (default: off after ``eval()``, on after
                ``train()``).

        Returns:
            ``(output, final state)`` as :func:`jaxrnn.functional.layer` returns them.
        """
        return functional.layer(
            self.layout.spec, self.state_dict(), x, hx, lengths=lengths, resets=resets,
            batch_first=self.batch_first, key=self._key(deterministic), dropout=self.dropout,
            input_dropout=self.input_dropout, recurrent_dropout=self.recurrent_dropout,
            unroll=self.unroll, remat=self.remat, matmul_dtype=self.matmul_dtype,
            backend=self.backend,
        )  # fmt: skip

    def init_state(self, batch: int) -> Any:
        """The zero state for ``batch`` sequences, stacked like ``hx`` (see
        :func:`jaxrnn.functional.init_state`)."""
        return functional.init_state(self.layout.spec, self.state_dict(), batch)

    def step(
        self,
        x: Array,
        state: Any = None,
        *,
        resets: Array | None = None,
        deterministic: bool | None = None,
    ) -> tuple[Array, Any]:
        """One time step, ``x (B, I), state -> (y (B, H_out), state)`` (unidirectional; see
        :func:`jaxrnn.functional.step`), with every option of the module, as a call on a
        one-step sequence. ``resets (B,)`` bool restarts those sequences from zeros at this
        step. Dropout follows ``train()``/``eval()``."""
        resets = functional.check_step(self.layout.spec, self.layout.bidirectional, x, resets)
        return functional.one_step(
            self, x, state, resets, self.batch_first, deterministic=deterministic
        )


class RNN(Recurrent):
    """Elman RNN, ``torch.nn.RNN``: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``.

    PyTorch's positional order, with ``nonlinearity`` (``"tanh"``/``"relu"``) fourth.
    """

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
        **kwargs: Any,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            family=f"rnn_{nonlinearity}", **kwargs,
        )  # fmt: skip


class LSTM(Recurrent):
    """LSTM, ``torch.nn.LSTM``: ``x (T, B, I) -> (output (T, B, D*P), (h_n (D*L, B, P),
    c_n (D*L, B, H)))``; ``proj_size > 0`` adds PyTorch's output projection (``P``)."""

    family_name: ClassVar[str] = families.lstm.LSTM.name


class GRU(Recurrent):
    """GRU, ``torch.nn.GRU``: ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, H))``."""

    family_name: ClassVar[str] = families.gru.GRU.name


class LayerNormLSTM(Recurrent):
    """Layer-normalised LSTM (Ba et al. 2016; :mod:`jaxrnn.families.layernorm_lstm`)."""

    family_name: ClassVar[str] = families.layernorm_lstm.LAYERNORM_LSTM.name


class ConvLSTM(Recurrent):
    """Convolutional LSTM (Shi et al. 2015; :mod:`jaxrnn.families.convlstm`):
    ``x (T, B, Hs, Ws, C_in) -> (output (T, B, Hs, Ws, D*C), (h_n, c_n))``."""

    family_name: ClassVar[str] = families.convlstm.CONVLSTM.name

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kernel_size: int | tuple[int, int] = 3,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        **kwargs: Any,
    ):
        kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            options=_merged(kwargs.pop("options", None), kernel_size=tuple(kernel)), **kwargs,
        )  # fmt: skip


class MinGRU(Recurrent):
    """minGRU (Feng et al. 2024; :mod:`jaxrnn.families.mingru`): ``x (T, B, I) ->
    (output (T, B, D*H), h_n (D*L, B, H))``; a linear recurrence (parallel-in-time kernels)."""

    family_name: ClassVar[str] = families.mingru.MINGRU.name


class MinLSTM(Recurrent):
    """minLSTM (Feng et al. 2024; :mod:`jaxrnn.families.minlstm`), shapes as :class:`MinGRU`."""

    family_name: ClassVar[str] = families.minlstm.MINLSTM.name


class LRU(Recurrent):
    """Linear Recurrent Unit (Orvieto et al. 2023; :mod:`jaxrnn.families.lru`):
    ``x (T, B, I) -> (output (T, B, D*H), h_n (D*L, B, N) complex)``; ``state_size`` is ``N``
    (default ``hidden_size``)."""

    family_name: ClassVar[str] = families.lru.LRU.name

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
        state_size: int = 0,
        **kwargs: Any,
    ):
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            options=_merged(
                kwargs.pop("options", None),
                state_size=0 if state_size == hidden_size else state_size,
            ),
            **kwargs,
        )  # fmt: skip


class RGLRU(Recurrent):
    """Real-Gated LRU of Griffin/Hawk (De et al. 2024; :mod:`jaxrnn.families.rglru`), shapes
    as :class:`MinGRU`."""

    family_name: ClassVar[str] = families.rglru.RGLRU.name


class SLSTM(Recurrent):
    """sLSTM of xLSTM (Beck et al. 2024; :mod:`jaxrnn.families.slstm`): ``x (T, B, I) ->
    (output (T, B, D*H), (h_n, c_n, n_n, m_n) each (D*L, B, H))``; keyword ``num_heads``
    blocks of the recurrent matrix (must divide ``hidden_size``).

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from jaxrnn.nnx import SLSTM
        >>> layer = SLSTM(3, 8, num_heads=2, rngs=nnx.Rngs(0))
        >>> y, (h_n, c_n, n_n, m_n) = layer(jnp.ones((5, 4, 3)))
        >>> y.shape, h_n.shape
        ((5, 4, 8), (1, 4, 8))
    """

    family_name: ClassVar[str] = families.slstm.SLSTM.name

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
        num_heads: int = 1,
        **kwargs: Any,
    ):
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            options=_merged(kwargs.pop("options", None), num_heads=num_heads), **kwargs,
        )  # fmt: skip


class MLSTM(SLSTM):
    """mLSTM of xLSTM (Beck et al. 2024; :mod:`jaxrnn.families.mlstm`): ``x (T, B, I) ->
    (output (T, B, D*H), (C_n (D*L, B, NH, DH, DH), n_n (D*L, B, NH, DH), m_n (D*L, B, NH)))``
    with ``NH = num_heads``, ``DH = hidden_size / NH``; runs chunkwise by default.

    Examples:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from jaxrnn.nnx import MLSTM
        >>> layer = MLSTM(3, 8, num_heads=2, rngs=nnx.Rngs(0))
        >>> y, (c_n, n_n, m_n) = layer(jnp.ones((5, 4, 3)))
        >>> y.shape, c_n.shape
        ((5, 4, 8), (1, 4, 2, 4, 4))
    """

    family_name: ClassVar[str] = families.mlstm.MLSTM.name


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


class CRF(nnx.Module):
    """Linear-chain CRF head (see :mod:`jaxrnn.crf`): ``model(emissions (B, T, K), tags (B, T),
    lengths)`` gives the log-likelihood ``(B,)``; ``model.decode(emissions, lengths)`` the
    Viterbi paths ``(B, T)`` and scores ``(B,)``. Parameters ``transitions (K, K)``, ``start``,
    ``end`` ``(K,)`` (``pytorch-crf``'s names and init); ``constraints`` (e.g.
    ``jaxrnn.crf.bio_constraints(tag_names)``) apply to training and decoding alike.

    Examples:
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


def _merged(options: Mapping[str, Any] | None, **named: Any) -> dict[str, Any]:
    """A layer's named shape arguments (``state_size=``) with the other ``options``; naming
    one in both places is ambiguous, so it is an error."""
    options = dict(options or {})
    twice = sorted(set(options) & set(named))
    if twice:
        raise ValueError(
            f"pass {', '.join(f'{k}=...' for k in twice)} as keyword argument(s), not in options"
        )
    return {**options, **named}


def _as_nested(x) -> tuple:
    return tuple(np.asarray(x).tolist())
