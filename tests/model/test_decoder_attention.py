"""The decoder's attention: the CPU few-query path equals PyTorch's reference attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from padless.model.decoder import MultiHeadAttention


@pytest.mark.parametrize("queries", [1, 3])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive"])
def test_few_query_path_equals_sdpa(queries: int, mask_kind: str) -> None:
    """A decoding step (1 query per row, or a beam group folded into 3) gives what
    `F.scaled_dot_product_attention` gives, with every kind of mask the caches pass."""
    torch.manual_seed(0)
    attn = MultiHeadAttention(d_model=32, n_heads=4, dropout=0.1).eval()
    rows, keys = 5, 17
    q = torch.randn(rows, 4, queries, 8)
    k, v = torch.randn(rows, 4, keys, 8), torch.randn(rows, 4, keys, 8)
    lengths = torch.tensor([17, 12, 5, 1, 9])
    valid = torch.arange(keys)[None, :] < lengths[:, None]  # (R, L), each row >= 1 key
    mask = {
        "none": None,
        "bool": valid[:, None, None, :],
        "additive": torch.zeros(rows, 1, 1, keys).masked_fill(~valid[:, None, None, :], -1e30),
    }[mask_kind]
    got = attn.attend(q, k, v, mask)
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    expected = attn.out_proj(reference.transpose(1, 2).reshape(rows, queries, 32))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    if mask is not None:  # masked keys really are ignored: changing them changes nothing
        k2, v2 = k.clone(), v.clone()
        k2[~valid[:, None, :, None].expand_as(k2)] = 1e3
        v2[~valid[:, None, :, None].expand_as(v2)] = -1e3
        torch.testing.assert_close(attn.attend(q, k2, v2, mask), got, rtol=1e-5, atol=1e-5)


def test_embedding_scale_positions_is_nemo_order() -> None:
    """``embedding_scale="positions"``: LN(E + P / sqrt(d)) (NeMo) against padless's
    LN(E sqrt(d) + P): equal up to the layer norm's epsilon, which matters as much as the
    embeddings are small (variance 1/d at initialisation)."""
    from padless.model.config import DecoderConfig
    from padless.model.decoder import TransformerDecoder
    from padless.model.layers import sinusoids

    d = 64
    cfg = DecoderConfig(d_model=d, n_layers=1, n_heads=2, embedding_scale="positions")
    theirs = TransformerDecoder(cfg, 20).eval()
    theirs.reset_parameters()  # embeddings with std d^-1/2, as NeMo and padless initialise
    ours = TransformerDecoder(DecoderConfig(d_model=d, n_layers=1, n_heads=2), 20).eval()
    ours.load_state_dict(theirs.state_dict())
    tokens, positions = torch.tensor([[3, 4, 5]]), torch.arange(3)
    with torch.no_grad():
        expected = theirs.embedding_norm(
            theirs.embedding(tokens) + sinusoids(positions, d, torch.float32) / d**0.5
        )
        torch.testing.assert_close(theirs.embed(tokens, positions), expected)
        close = ours.embed(tokens, positions)
    torch.testing.assert_close(close, expected, atol=1e-2, rtol=0)
    assert (close - expected).abs().max() > 1e-5
