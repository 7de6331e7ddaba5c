import pytest
import torch
import torch.nn.functional as F

from semanticgen_core import attention as A


def dense_reference(q, k, v, spans):
    """Masked dense attention: the quadratic thing windowed_attention must equal (test-only)."""
    L = q.shape[1]
    win = torch.empty(L, dtype=torch.long)
    for i, (s, n) in enumerate(spans):
        win[s : s + n] = i
    mask = win[:, None] == win[None, :]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2)


def test_window_unwindow_round_trip():
    x = torch.randn(2, 12, 3, 4)
    w = A.window(x, 0, 4, 3)
    assert w.shape == (6, 4, 3, 4)
    assert torch.equal(A.unwindow(w, 2), x)
    assert torch.equal(A.window(x, 4, 4, 1)[1], x[1, 4:8])


def test_window_spans_shift_by_half():
    lens = (3, 3, 3, 3, 3)
    assert A.window_spans(lens, False) == ((0, 6), (6, 6), (12, 3))
    assert A.window_spans(lens, True) == ((0, 3), (3, 6), (9, 6))
    assert A.window_spans((7,), True) == ((0, 7),)
    # spans always tile the sequence
    for shifted in (False, True):
        spans = A.window_spans((2, 5, 1, 4, 3, 3), shifted)
        assert spans[0][0] == 0 and sum(n for _, n in spans) == 18
        assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:]))


@pytest.mark.parametrize("lens", [(4, 4, 4, 4, 4), (5, 4, 5, 4, 5, 3), (6, 6, 6, 6)])
@pytest.mark.parametrize("shifted", [False, True])
def test_windowed_attention_equals_masked_dense(lens, shifted):
    g = torch.Generator().manual_seed(0)
    L = sum(lens)
    q, k, v = (torch.randn(2, L, 3, 8, generator=g) for _ in range(3))
    spans = A.window_spans(lens, shifted)
    assert torch.allclose(A.windowed_attention(q, k, v, spans), dense_reference(q, k, v, spans), atol=1e-5)


def test_windowed_attention_never_runs_a_long_sequence(monkeypatch):
    seen = []
    real = A.attention

    def spy(q, k, v, backend=None):
        seen.append(q.shape[1])
        return real(q, k, v, backend)

    monkeypatch.setattr(A, "attention", spy)
    lens = (10,) * 40
    q = torch.randn(1, 400, 2, 8)
    A.windowed_attention(q, q, q, A.window_spans(lens, True))
    assert max(seen) == 20 and len(seen) <= 2  # 4-D windows of one length per kernel call


def test_interleaved_layout_puts_semantic_frames_with_their_time_span():
    # 8 latent frames of 2x2 tokens, 4 semantic frames of 1x1 token, window 4 -> chunks of 2 latent frames
    perm, inverse, lens = A.interleaved_layout((8, 2, 2), (4, 1, 1), 4)
    n_lat = 32
    assert lens == (9, 9, 9, 9)
    assert torch.equal(perm[inverse], torch.arange(36)) and torch.equal(perm.sort().values, torch.arange(36))
    # chunk k: latent frames 2k, 2k+1 (8 tokens), then semantic frame k
    for c in range(4):
        chunk = perm[9 * c : 9 * (c + 1)]
        assert torch.equal(chunk[:8], torch.arange(8 * c, 8 * c + 8))
        assert chunk[8].item() == n_lat + c
    # a window covering the video: no reordering (full attention)
    assert A.interleaved_layout((8, 2, 2), (4, 1, 1), 8) == (None, None, (36,))
    assert A.interleaved_layout((8, 2, 2), None, None) == (None, None, (32,))
    with pytest.raises(ValueError, match="even"):
        A.interleaved_layout((8, 2, 2), None, 3)


def test_interleaved_layout_uneven_ratio():
    # 7.5 latent frames per semantic frame (24 fps VAE vs 1.6 fps encoder): chunks differ by a frame at most
    perm, _, lens = A.interleaved_layout((16, 1, 1), (2, 1, 1), 4)
    assert sum(lens) == 18 and len(lens) == 8
    assert sorted(set(lens)) == [2, 3]
