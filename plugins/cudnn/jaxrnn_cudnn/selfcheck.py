"""``python -m jaxrnn_cudnn.selfcheck``: what the plugin finds here, and a quick GPU check.

Prints versions, devices, why the plugin is (un)available, cuDNN's weight layout against
the assumed one, each algorithm's plan (workspace and reserve bytes), and runs a small LSTM,
GRU and RNN forward and gradient against jaxrnn's scan kernel under full float32. Exits 1
on the first failure, with cuDNN's status string in the message.
"""

from __future__ import annotations

import sys
import traceback


def _step(name, fn):
    try:
        out = fn()
        print(f"[ok]   {name}" + (f": {out}" if out is not None else ""))
        return True
    except Exception as err:
        print(f"[FAIL] {name}: {type(err).__name__}: {err}")
        traceback.print_exc()
        return False


def main() -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxrnn_cudnn as c
    from jaxrnn_cudnn import _layout, _rnn

    print(
        f"python {sys.version.split()[0]}, jax {jax.__version__}, backend {jax.default_backend()}"
    )
    print(f"devices: {jax.devices()}")
    ok = _step("cuDNN library", c.cudnn_version)
    ok &= _step(
        "header version",
        lambda: c.shared_library().jaxrnn_cudnn_header_version(),
    )
    print(f"available: {c.available()}  load_error: {c.load_error()}")
    if not c.available():
        return 0 if jax.default_backend() != "gpu" else 1

    for mode, proj in (("lstm", 0), ("lstm", 4), ("gru", 0), ("rnn_tanh", 0)):
        shape = c.Shape(mode, 8, 16, 2, True, proj)

        def layout(shape=shape):
            q, qt = _layout.queried(shape)
            k, kt = c.canonical(shape)
            same = bool((q == k).all()) and qt == kt
            return f"{shape}: {qt} elements, canonical layout {'matches' if same else 'DIFFERS'}"

        ok &= _step(f"layout {mode} proj={proj}", layout)

    for algo in ("standard", "persist_static", "persist_static_small_h"):
        for mode, h in (("lstm", 128), ("lstm", 1024), ("gru", 256), ("rnn_tanh", 64)):
            cfg = _rnn._Cfg(mode, c.Shape(mode, 64, h), algo, 0, 0, False)

            def plan(cfg=cfg):
                a, ws, rs, wb = _rnn.plan(cfg, 128, 32, True)
                return f"runs algo {a}, workspace {ws} B, reserve {rs} B, weights {wb} B (T128 B32)"

            ok &= _step(f"plan {mode} H{h} {algo}", plan)

    try:
        import jaxrnn
    except ImportError:
        print("jaxrnn not importable: parity checks skipped")
        return 0 if ok else 1
    rng = np.random.default_rng(0)
    for mode, proj, lengths in (("lstm", 0, False), ("lstm", 3, True), ("gru", 0, True),
                                ("rnn_relu", 0, False)):  # fmt: skip
        g = _layout.GATES[mode]
        i, h, t, b = 5, 6, 7, 4
        o = proj or h
        params = {}
        for layer in range(2):
            for sfx in ("", "_reverse"):
                n = f"_l{layer}{sfx}"
                ii = i if layer == 0 else 2 * o
                params["weight_ih" + n] = rng.standard_normal((g * h, ii)).astype("f4") * 0.4
                params["weight_hh" + n] = rng.standard_normal((g * h, o)).astype("f4") * 0.4
                params["bias_ih" + n] = rng.standard_normal(g * h).astype("f4") * 0.1
                params["bias_hh" + n] = rng.standard_normal(g * h).astype("f4") * 0.1
                if proj:
                    params["weight_hr" + n] = rng.standard_normal((proj, h)).astype("f4") * 0.4
        params = {k: jnp.asarray(v) for k, v in params.items()}
        x = jnp.asarray(rng.standard_normal((t, b, i)), jnp.float32)
        ln = jnp.asarray([7, 3, 1, 5], jnp.int32) if lengths else None

        def ref(p, x, mode=mode, ln=ln):
            if mode == "lstm":
                return jaxrnn.lstm(p, x, lengths=ln, backend="scan")
            if mode == "gru":
                return jaxrnn.gru(p, x, lengths=ln, backend="scan")
            kind = "relu" if mode == "rnn_relu" else "tanh"
            return jaxrnn.rnn(p, x, nonlinearity=kind, lengths=ln, backend="scan")

        def parity(params=params, x=x, mode=mode, ln=ln, ref=ref):
            def loss(f):
                return lambda p, x: sum(jnp.sin(a).sum() for a in jax.tree.leaves(f(p, x)))

            with jax.default_matmul_precision("highest"):
                ours = jax.jit(lambda p, x: c.rnn(mode, p, x, lengths=ln))(params, x)
                want = ref(params, x)
                pairs = zip(jax.tree.leaves(ours), jax.tree.leaves(want), strict=True)
                fwd = max(float(jnp.max(jnp.abs(a - b_))) for a, b_ in pairs)
                ours_fn = loss(lambda p, x: c.rnn(mode, p, x, lengths=ln))
                g1 = jax.jit(jax.grad(ours_fn, (0, 1)))(params, x)
                g2 = jax.grad(loss(ref), (0, 1))(params, x)
                pairs = zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True)
                grad = max(float(jnp.max(jnp.abs(a - b_))) for a, b_ in pairs)
            msg = f"max |diff| forward {fwd:.2e}, gradients {grad:.2e}"
            if not (fwd < 5e-5 and grad < 2e-4):
                raise AssertionError(msg)
            return msg

        name = f"parity {mode} proj={proj} L2 bidir lengths={lengths}"
        ok &= _step(name, parity)
    print("selfcheck " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
