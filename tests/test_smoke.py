"""A first end-to-end check against PyTorch; the full parity matrix lives in test_parity.py."""

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import jaxrnn  # noqa: E402


def test_bidirectional_lstm_with_lengths_matches_torch():
    torch.manual_seed(0)
    m = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    x = torch.randn(6, 4, 5)
    lengths = torch.tensor([6, 2, 4, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, (h, c) = m(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=6)
    got, (gh, gc) = jaxrnn.lstm(
        jaxrnn.interop.from_torch(m), jnp.asarray(x.numpy()), lengths=jnp.asarray(lengths.numpy())
    )
    np.testing.assert_allclose(got, out.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(gh, h.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(gc, c.detach().numpy(), atol=1e-5)
