"""sLSTM and mLSTM, Beck et al. 2024 (xLSTM, arXiv:2405.04517) §2.2-2.3 with the stabilized
gates of Appendix A (``m``: the stabilizer, ``c, n, C`` scaled by ``exp(-m)``), written as the
equations read: the block-diagonal ``R`` assembled into a full matrix, the matrix memory as an
explicit outer product, one step at a time. The sLSTM's stabilizer starts at the input gate
(``m = ĩ`` while ``n = 0``), as the authors' ``xlstm`` cell; the mLSTM's starts at 0 and the
query carries the ``1/√DH``, as their ``mlstm_kernels`` (the paper scales the key; ``h`` is the
same)."""

import numpy as np

from references import affine, sigmoid


def _log_sigmoid(a):
    return -np.logaddexp(0.0, -a)


def slstm_step(p, carry, x):
    h, c, n, m = carry
    hidden = h.shape[-1]
    blocks = p["weight_hh"]  # (NH, 4*DH, DH): one (4*DH, DH) block per head, rows gate-major
    heads, _, dh = blocks.shape
    r = np.zeros((4 * hidden, hidden))
    for head in range(heads):
        cols = slice(head * dh, (head + 1) * dh)
        for gate in range(4):
            rows = slice(gate * hidden + head * dh, gate * hidden + (head + 1) * dh)
            r[rows, cols] = blocks[head, gate * dh : (gate + 1) * dh]
    i, f, z, o = np.split(affine(x, p["weight_ih"], p.get("bias")) + h @ r.T, 4, axis=-1)
    log_f = _log_sigmoid(f)  # the official cell's sigmoid forget gate
    m_new = np.where(n == 0, i, np.maximum(log_f + m, i))
    i_gate, f_gate = np.exp(i - m_new), np.exp(log_f + m - m_new)
    c = f_gate * c + i_gate * np.tanh(z)
    n = f_gate * n + i_gate
    h = sigmoid(o) * c / n
    return (h, c, n, m_new), h


def mlstm_step(p, carry, x):
    big_c, n, m = carry  # (B, NH, DH, DH) indexed [key, value], (B, NH, DH), (B, NH)
    heads = p["weight_if"].shape[0] // 2
    hidden = p["weight_q"].shape[0]
    dh = hidden // heads

    def heads_of(name):
        return affine(x, p[f"weight_{name}"], p.get(f"bias_{name}")).reshape(-1, heads, dh)

    q, k, v = heads_of("q") / np.sqrt(dh), heads_of("k"), heads_of("v")
    gates = affine(x, p["weight_if"], p.get("bias_if"))
    i, log_f = gates[:, :heads], _log_sigmoid(gates[:, heads:])
    m_new = np.maximum(log_f + m, i)
    i_gate, f_gate = np.exp(i - m_new), np.exp(log_f + m - m_new)
    big_c = f_gate[..., None, None] * big_c + i_gate[..., None, None] * (
        k[..., :, None] * v[..., None, :]
    )
    n = f_gate[..., None] * n + i_gate[..., None] * k
    read = np.einsum("bhkv,bhk->bhv", big_c, q)
    # the paper's max(|ñᵀq|, 1) in the scaled states: max(|nᵀq|, exp(-m))
    norm = np.maximum(np.abs(np.einsum("bhk,bhk->bh", n, q)), np.exp(-m_new))
    out = sigmoid(affine(x, p["weight_o"], p.get("bias_o")))
    return (big_c, n, m_new), out * (read / norm[..., None]).reshape(-1, hidden)


STEPS = {"slstm": slstm_step, "mlstm": mlstm_step}
