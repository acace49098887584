"""Print the bad input table of ``docs/reliability.md`` (markdown), probed live.

Run from the repository root:
``python docs/bad_input_table.py > /tmp/table.md``. Every probe runs against
``torch.nn`` and against jaxrnn's linen, nnx and functional APIs; each cell is
the exception (type and the first ~100 characters of its message) or
``ok → ...``.
"""

from __future__ import annotations

import pathlib
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
warnings.simplefilter("ignore")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxrnn  # noqa: E402
import jaxrnn.linen  # noqa: E402
import jaxrnn.nnx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402
from jax.experimental import checkify  # noqa: E402
from jaxrnn.params import Layout, init_params  # noqa: E402

torch.set_num_threads(1)
I, H, T, B = 4, 6, 5, 3
X = jnp.ones((T, B, I))
XT = torch.ones(T, B, I)
KEY = jax.random.key(0)
CUT = 100
WARNS = "dropout option adds dropout"  # the warnings the table shows


@dataclass
class Probe:
    """One row: a callable per column (``None``: no counterpart, shown as —).

    ``flag`` adjusts the status: ``artefact`` (torch's error comes from its
    internals: the same type is enough), ``stricter`` (jaxrnn may reject what
    torch runs), ``better`` (jaxrnn may run what torch cannot), ``raise``/``ok``
    (no torch counterpart: what jaxrnn should do), or a fixed status text.
    """

    label: str
    torch: Callable[[], Any] | None
    linen: Callable[[], Any] | None
    nnx: Callable[[], Any] | None
    functional: Callable[[], Any] | None = None
    flag: str = ""


def shape(y: Any) -> str:
    return f"ok → out {tuple(y.shape)}"


def run(fn: Callable[[], Any] | None) -> tuple[str, Any]:
    """``("—", None)``, ``("ok", text)`` or ``("raise", exception)``."""
    if fn is None:
        return "—", None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn()
        except Exception as e:  # every exception is what the row reports
            return "raise", e
    text = result if isinstance(result, str) else shape(result)
    warned = {
        type(w.message).__name__ for w in caught if WARNS in str(w.message)
    }
    return "ok", text + "".join(f" (warns {w})" for w in sorted(warned))


def cell(kind: str, value: Any) -> str:
    if kind == "—":
        return "—"
    if kind == "ok":
        return value
    message = " ".join(str(value).split())
    message = message if len(message) <= CUT else message[:CUT] + "…"
    return f"`{type(value).__name__}`: {message}".replace("|", "\\|")


def status(probe: Probe, ref: tuple[str, Any], ours: list) -> str:
    ours = [o for o in ours if o[0] != "—"]
    flag = probe.flag
    if flag not in ("", "artefact", "stricter", "better", "raise", "ok"):
        return flag
    kinds = {k for k, _ in ours}
    if ref[0] == "—":
        return "✓" if kinds == {flag} else "✗"
    if ref[0] == "raise":
        if "ok" in kinds:
            return "✓ (better)" if flag == "better" else "✗"
        same_type = all(type(e) is type(ref[1]) for _, e in ours)
        same_text = all(str(ref[1]) in str(e) for _, e in ours)
        if same_type and (same_text or flag == "artefact"):
            return "✓"
        return "≈"
    if kinds == {"ok"}:
        return "✓"
    return "✓ (stricter)" if flag == "stricter" else "✗"


# --- builders ---------------------------------------------------------------


def t_build(cls: str = "RNN", run_it: bool = True, **kw: Any) -> Callable:
    def go():
        m = getattr(torch.nn, cls)(**({"input_size": I, "hidden_size": H} | kw))
        m.eval()
        return m(XT)[0] if run_it else "ok"

    return go


def l_build(cls: str = "RNN", **kw: Any) -> Callable:
    def go():
        m = getattr(jaxrnn.linen, cls)(**({"hidden_size": H} | kw))
        v = m.init(KEY, X, deterministic=True)
        return m.apply(v, X, deterministic=True)[0]

    return go


def n_build(cls: str = "RNN", **kw: Any) -> Callable:
    def go():
        kwargs = {"input_size": I, "hidden_size": H} | kw
        m = getattr(jaxrnn.nnx, cls)(**kwargs, rngs=nnx.Rngs(0))
        m.eval()
        return m(X)[0]

    return go


def ctor(label: str, cls: str = "RNN", flag: str = "", **kw: Any) -> Probe:
    return Probe(
        label,
        t_build(cls, **kw),
        l_build(cls, **kw),
        n_build(cls, **kw),
        None,
        flag,
    )


def params(family: str = "lstm", **kw: Any) -> dict:
    return init_params(KEY, Layout(family, I, H, **kw))


P_LSTM = params()
P_GRU = params("gru")
P_LSTM2 = params(num_layers=2)


def t_lstm(x=XT, hx=None, cls="LSTM", **kw):
    def go():
        m = getattr(torch.nn, cls)(I, H, **kw)
        m.eval()
        return m(x, hx)[0]

    return go


def l_lstm(x=X, hx=None, cls="LSTM", **call):
    def go():
        m = getattr(jaxrnn.linen, cls)(H)
        v = m.init(KEY, jnp.ones((T, B, I)), deterministic=True)
        return m.apply(v, x, hx, deterministic=True, **call)[0]

    return go


def n_lstm(x=X, hx=None, cls="LSTM", **call):
    def go():
        m = getattr(jaxrnn.nnx, cls)(I, H, rngs=nnx.Rngs(0))
        m.eval()
        return m(x, hx, **call)[0]

    return go


def f_lstm(x=X, hx=None, fn="lstm", **call):
    p = P_GRU if fn == "gru" else P_LSTM
    return lambda: getattr(jaxrnn, fn)(p, x, hx, **call)[0]


def call(label, x=None, hx=None, cls="LSTM", flag="", th=None, **kw):
    fn = cls.lower()
    xj = X if x is None else x
    xt = XT if x is None else torch.from_numpy(np.asarray(x))
    return Probe(
        label,
        t_lstm(xt, th, cls),
        l_lstm(xj, hx, cls, **kw),
        n_lstm(xj, hx, cls, **kw),
        f_lstm(xj, hx, fn, **kw),
        flag,
    )


# --- runtime probes ---------------------------------------------------------


def t_lengths(values):
    def go():
        m = torch.nn.LSTM(I, H)
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            XT, torch.tensor(values), enforce_sorted=False
        )
        return m(packed)[0].data

    return go


def jit_lengths(values):
    """Under jit: the result, and what checkify reports."""

    def go():
        lengths = jnp.asarray(values)
        f = jax.jit(lambda x, n: jaxrnn.lstm(P_LSTM, x, lengths=n)[0])
        y = f(X, lengths)
        err, _ = jax.jit(checkify.checkify(f, errors=checkify.user_checks))(
            X, lengths
        )
        finite = bool(jnp.all(jnp.isfinite(y)))
        message = (err.get() or "no error").split(" (`")[0]
        return (
            f"clamped → out {y.shape}, finite={finite}; checkify: '{message}'"
        )

    return go


def forward_mode(how):
    def go():
        with jax.enable_x64(True):
            p = {k: v.astype(jnp.float64) for k, v in P_GRU.items()}
            x = X.astype(jnp.float64)
            f = lambda x: jaxrnn.gru(p, x)[0].sum()  # noqa: E731
            if how == "jvp":
                return f"ok → {jax.jvp(f, (x,), (jnp.ones_like(x),))[1]:.4f}"
            if how == "jacfwd":
                return f"ok → jacobian {jax.jacfwd(f)(x).shape}"
            return f"ok → hessian {jax.hessian(f)(x[:2, :1]).shape}"

    return go


def t_forward_ad():
    import torch.autograd.forward_ad as fwad

    m = torch.nn.GRU(I, H)
    with fwad.dual_level():
        x = fwad.make_dual(XT, torch.ones_like(XT))
        return fwad.unpack_dual(m(x)[0]).tangent


def n_dropout_later():
    m = jaxrnn.nnx.LSTM(I, H, 2, rngs=nnx.Rngs(0))
    m.train()
    m.dropout = 0.5
    return m(X)[0]


def t_dropout_later():
    m = torch.nn.LSTM(I, H, 2)
    m.train()
    m.dropout = 0.5
    return m(XT)[0]


def f_dropout(rate, key=True, layers=2):
    p = P_LSTM2 if layers == 2 else P_LSTM
    k = jax.random.key(1) if key else None
    return lambda: jaxrnn.lstm(p, X, key=k, dropout=rate)[0]


def dropout_one_training():
    y = jaxrnn.lstm(P_LSTM2, X, key=jax.random.key(1), dropout=1.0)[0]
    top = {k[:-1] + "0": v for k, v in P_LSTM2.items() if k.endswith("l1")}
    alone = jaxrnn.lstm(top, jnp.zeros((T, B, H)))[0]
    return f"ok → top layer saw zeros: {bool(jnp.allclose(y, alone))}"


def t_dropout_one_training():
    m = torch.nn.LSTM(I, H, 2, dropout=1.0)
    m.train()
    y = m(XT)[0]
    top = torch.nn.LSTM(H, H)
    top.load_state_dict(
        {k[:-1] + "0": v for k, v in m.state_dict().items() if k.endswith("l1")}
    )
    same = torch.allclose(y, top(torch.zeros(T, B, H))[0])
    return f"ok → top layer saw zeros: {same}"


def gru_inf():
    h0 = jnp.full((1, B, H), jnp.inf)
    y = jaxrnn.gru(P_GRU, X, h0)[0]
    return f"ok → all NaN: {bool(jnp.all(jnp.isnan(y)))}"


def t_gru_inf():
    y = torch.nn.GRU(I, H)(XT, torch.full((1, B, H), float("inf")))[0]
    return f"ok → all NaN: {bool(torch.isnan(y).all())}"


def layout_of_batch_first(api):
    """Which layout runs with batch_first="False" (rejected now)."""
    x = jnp.ones((B, T, I))
    if api == "linen":
        return l_build("LSTM", batch_first="False")
    if api == "nnx":
        return n_build("LSTM", batch_first="False")
    return lambda: jaxrnn.lstm(P_LSTM, x, batch_first="False")[0]


P_BI = params(bidirectional=True)


def l_step_bidirectional():
    m = jaxrnn.linen.LSTM(H, bidirectional=True)
    v = m.init(KEY, X, deterministic=True)
    return m.apply(v, X[0], method="step")[0]


def n_step_bidirectional():
    m = jaxrnn.nnx.LSTM(I, H, bidirectional=True, rngs=nnx.Rngs(0))
    return m.step(X[0])[0]


def resets(value):
    return Probe(
        f"`resets` {value[0]}",
        None,
        l_lstm(resets=value[1]),
        n_lstm(resets=value[1]),
        f_lstm(resets=value[1]),
        "raise",
    )


def probes() -> list[Probe]:
    x3 = jnp.ones((T, B, 3))
    h_wrong = jnp.zeros((1, 2, H))
    h_lstm_wrong = (h_wrong, jnp.zeros((1, B, H)))
    t_h_wrong = (torch.zeros(1, 2, H), torch.zeros(1, B, H))
    h64 = jnp.zeros((1, B, H), jnp.float64)
    rows = [
        ctor("`hidden_size=0`", hidden_size=0),
        ctor("`hidden_size=-1`", hidden_size=-1),
        ctor("`hidden_size=2.5`", hidden_size=2.5),
        ctor('`hidden_size="6"`', hidden_size="6"),
        ctor("`hidden_size=True`", hidden_size=True, flag="artefact"),
        ctor("`num_layers=0`", num_layers=0),
        ctor("`num_layers=-1`", num_layers=-1),
        ctor("`num_layers=2.0`", num_layers=2.0, flag="artefact"),
        Probe(
            "`input_size=0`", t_build(input_size=0), None, n_build(input_size=0)
        ),
        Probe(
            "`input_size=-1`",
            t_build(input_size=-1),
            None,
            n_build(input_size=-1),
        ),
        Probe(
            "`input_size=4.0`",
            t_build(input_size=4.0),
            None,
            n_build(input_size=4.0),
        ),
        ctor("`bias=0`", bias=0),
        ctor("`bias=1`", bias=1),
        ctor('`bias="no"`', bias="no"),
        ctor("`batch_first=1`", batch_first=1),
        ctor('`batch_first="False"`', batch_first="False"),
        ctor("`bidirectional=1`", bidirectional=1, flag="artefact"),
        ctor('`bidirectional="True"`', bidirectional="True", flag="artefact"),
    ]
    for rate in (-0.1, 1.5, "0.5", True):
        rows.append(
            Probe(
                f"`dropout={rate!r}`",
                t_build(dropout=rate, num_layers=2),
                l_build(dropout=rate, num_layers=2),
                n_build(dropout=rate, num_layers=2),
                f_dropout(rate),
            )
        )
    rows += [
        Probe(
            "`dropout=1.0`, 2 layers (eval)",
            t_build("LSTM", dropout=1.0, num_layers=2),
            l_build("LSTM", dropout=1.0, num_layers=2),
            n_build("LSTM", dropout=1.0, num_layers=2),
            f_dropout(1.0, key=False),
        ),
        Probe(
            "`dropout=1.0` in training (functional: with a `key`)",
            t_dropout_one_training,
            None,
            None,
            dropout_one_training,
        ),
        Probe(
            "`dropout=0.5`, 1 layer",
            t_build(dropout=0.5),
            l_build(dropout=0.5),
            n_build(dropout=0.5),
        ),
        ctor('`nonlinearity="sigmoid"` (RNN)', nonlinearity="sigmoid"),
        ctor('`nonlinearity="RELU"` (RNN)', nonlinearity="RELU"),
        ctor("`proj_size=-1` (LSTM)", "LSTM", proj_size=-1),
        ctor("`proj_size=6 = hidden_size` (LSTM)", "LSTM", proj_size=H),
        ctor("`proj_size=2.0` (LSTM)", "LSTM", proj_size=2.0, flag="artefact"),
        ctor("`proj_size=2` (GRU)", "GRU", proj_size=2),
        ctor("`proj_size=2` (RNN)", "RNN", proj_size=2),
        call("input with 3 features, layer expects 4", x=x3),
        call("1-D input `(T,)`", x=jnp.ones((T,))),
        call("4-D input", x=jnp.ones((1, T, B, I))),
        Probe(
            "integer input",
            t_lstm(XT.int()),
            l_lstm(X.astype(int)),
            n_lstm(X.astype(int)),
            f_lstm(X.astype(int)),
        ),
        call("`T = 0` steps", x=jnp.ones((0, B, I))),
        call("`B = 0` batch", x=jnp.ones((T, 0, I))),
        call("`h_0` of the wrong shape", hx=h_lstm_wrong, th=t_h_wrong),
        call(
            "LSTM `hx` as a single tensor",
            hx=jnp.zeros((1, B, H)),
            th=torch.zeros(1, B, H),
        ),
        call(
            "GRU `hx` as a tuple",
            cls="GRU",
            hx=(jnp.zeros((1, B, H)),) * 2,
            th=(torch.zeros(1, B, H),) * 2,
        ),
        Probe(
            "complex `hx` to a real family (GRU)",
            t_lstm(XT, torch.zeros(1, B, H, dtype=torch.complex64), "GRU"),
            l_lstm(X, jnp.zeros((1, B, H), jnp.complex64), "GRU"),
            n_lstm(X, jnp.zeros((1, B, H), jnp.complex64), "GRU"),
            f_lstm(X, jnp.zeros((1, B, H), jnp.complex64), "gru"),
            "artefact",
        ),
    ]
    with jax.enable_x64(True):
        rows.append(
            Probe(
                "float64 `h_0` with float32 input (GRU)",
                t_lstm(XT, torch.zeros(1, B, H, dtype=torch.float64), "GRU"),
                None,
                None,
                f_lstm(X, h64, "gru"),
                "≈ promotes",
            )
        )
    bad_lengths = [
        ("containing 0", [0, 5, 5]),
        ("> T", [2, 6, 5]),
        ("negative", [-1, 5, 5]),
    ]
    for name, values in bad_lengths[:2]:
        rows.append(
            Probe(
                f"`lengths` {name}",
                t_lengths(values),
                l_lstm(lengths=jnp.asarray(values)),
                n_lstm(lengths=jnp.asarray(values)),
                f_lstm(lengths=jnp.asarray(values)),
            )
        )
    for name, values in bad_lengths:
        rows.append(
            Probe(
                f"`lengths` {name}, under `jit`",
                t_lengths(values),
                None,
                None,
                jit_lengths(values),
                "≈ clamped, checkify reports",
            )
        )
    lengths_f = jnp.asarray([5.0, 4.0, 3.0])
    rows += [
        Probe(
            "`lengths` as floats",
            t_lengths([5.0, 4.0, 3.0]),
            l_lstm(lengths=lengths_f),
            n_lstm(lengths=lengths_f),
            f_lstm(lengths=lengths_f),
            "stricter",
        ),
        Probe(
            "`lengths` of the wrong length",
            t_lengths([5, 4]),
            l_lstm(lengths=jnp.asarray([5, 4])),
            n_lstm(lengths=jnp.asarray([5, 4])),
            f_lstm(lengths=jnp.asarray([5, 4])),
            "stricter",
        ),
        Probe(
            "unbatched input with `lengths`",
            lambda: torch.nn.utils.rnn.pack_padded_sequence(
                XT[:, 0], torch.tensor([5])
            ),
            l_lstm(X[:, 0], lengths=jnp.asarray([5])),
            n_lstm(X[:, 0], lengths=jnp.asarray([5])),
            f_lstm(X[:, 0], lengths=jnp.asarray([5])),
            "artefact",
        ),
        call("NaN in the input", x=jnp.full((T, B, I), jnp.nan)),
        resets(("of the wrong shape", jnp.zeros((T, B + 1), bool))),
        resets(("of the wrong dtype (float)", jnp.zeros((T, B)))),
        Probe(
            "set `dropout = 0.5` after building with 0, then train",
            t_dropout_later,
            None,
            n_dropout_later,
        ),
        Probe(
            "forward-mode AD (`jax.jvp` / torch `forward_ad`)",
            t_forward_ad,
            None,
            None,
            forward_mode("jvp"),
            "better",
        ),
        Probe(
            "`jax.jacfwd` (GRU)", None, None, None, forward_mode("jacfwd"), "ok"
        ),
        Probe(
            "`jax.hessian` (GRU)",
            None,
            None,
            None,
            forward_mode("hessian"),
            "ok",
        ),
        Probe(
            "step call on a bidirectional stack",
            None,
            l_step_bidirectional,
            n_step_bidirectional,
            lambda: jaxrnn.step("lstm", P_BI, X[0]),
            "raise",
        ),
        Probe(
            '`backend="fused"` on a family without it (LRU)',
            None,
            None,
            None,
            lambda: jaxrnn.lru(params("lru"), X, backend="fused")[0],
            "raise",
        ),
        Probe(
            "functional `key=3` (an int) with dropout",
            None,
            None,
            None,
            lambda: jaxrnn.lstm(P_LSTM2, X, key=3, dropout=0.5)[0],
            "raise",
        ),
        Probe(
            "functional `unroll=0`",
            None,
            None,
            None,
            lambda: jaxrnn.lstm(P_LSTM, X, unroll=0)[0],
            "ok",
        ),
        Probe(
            "functional `remat=-2`",
            None,
            None,
            None,
            lambda: jaxrnn.lstm(P_LSTM, X, remat=-2)[0],
            "raise",
        ),
        Probe("GRU `h_0 = inf`", t_gru_inf, None, None, gru_inf),
        Probe(
            "params missing `bias_hh_l0` (torch: strict load)",
            lambda: torch.nn.LSTM(I, H).load_state_dict(
                {
                    k: v
                    for k, v in torch.nn.LSTM(I, H).state_dict().items()
                    if k != "bias_hh_l0"
                }
            ),
            None,
            None,
            lambda: jaxrnn.lstm(
                {k: v for k, v in P_LSTM.items() if k != "bias_hh_l0"}, X
            ),
            "artefact",
        ),
        Probe(
            "GRU params given to `jaxrnn.lstm`",
            None,
            None,
            None,
            lambda: jaxrnn.lstm(P_GRU, X),
            "raise",
        ),
        Probe(
            'functional `nonlinearity="sigmoid"`',
            t_build(nonlinearity="sigmoid"),
            None,
            None,
            lambda: jaxrnn.rnn(params("rnn_tanh"), X, nonlinearity="sigmoid"),
        ),
        Probe(
            '`batch_first="False"`, input batch-first',
            t_build(batch_first="False"),
            layout_of_batch_first("linen"),
            layout_of_batch_first("nnx"),
            layout_of_batch_first("functional"),
        ),
        Probe(
            "functional `dropout=-0.5` with a key",
            t_build(dropout=-0.5, num_layers=2),
            None,
            None,
            f_dropout(-0.5),
        ),
        Probe(
            "functional `dropout=0.5` without a key",
            None,
            None,
            None,
            lambda: (
                "ok → same as dropout=0: "
                + str(
                    bool(
                        jnp.array_equal(
                            jaxrnn.lstm(P_LSTM2, X, dropout=0.5)[0],
                            jaxrnn.lstm(P_LSTM2, X)[0],
                        )
                    )
                )
            ),
            "ok",
        ),
    ]
    return rows


HEADER = (
    "| probe | torch 2.13 | jaxrnn.linen | jaxrnn.nnx | functional | status |\n"
    "| --- | --- | --- | --- | --- | --- |"
)


def main() -> None:
    print(HEADER)
    for probe in probes():
        ref = run(probe.torch)
        ours = [run(probe.linen), run(probe.nnx), run(probe.functional)]
        cells = [cell(*ref)] + [cell(*o) for o in ours]
        print(
            f"| {probe.label} | "
            + " | ".join(cells)
            + f" | {status(probe, ref, ours)} |"
        )


if __name__ == "__main__":
    main()
