"""Length-bucketed forward passes (train.bucket_size): same embeddings and gradients as one padded pass."""
import numpy as np
import pytest
import torch

from hybrid_ir.encoder import embed, embed_texts, tokenize
from hybrid_ir.loss import info_nce_loss

TEXTS = [
    "Ok",
    "A somewhat longer sentence about the history of the Amazon rainforest and its rivers.",
    "Wie viele Punkte hat die Verteidigung der Panthers zugelassen?",
    "中国的首都是北京。",
    "Short.",
    "The Panthers defense gave up just 308 points, ranking sixth in the league, and forced turnovers.",
    "Сколько очков пропустила защита «Пантер»?",
]


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("bucket_size", [1, 3, 6])
def test_buckets_give_the_padded_pass_embeddings_and_gradients(tiny_encoder, bucket_size):
    model, tok = tiny_encoder
    results = []
    for size in (0, bucket_size):
        model.zero_grad(set_to_none=True)
        q = embed_texts(model, tok, TEXTS[:3], "query: ", 32, "mean", size)
        d = embed_texts(model, tok, TEXTS[1:] + TEXTS[:1], "passage: ", 32, "mean", size)
        info_nce_loss(q, d[:3], d[3:], 0.05).backward()
        results.append((q.detach(), d.detach(), _grads(model)))
    (q0, d0, g0), (q1, d1, g1) = results
    assert torch.allclose(q0, q1, atol=1e-5) and torch.allclose(d0, d1, atol=1e-5)
    assert g0.keys() == g1.keys() and g0
    for name in g0:
        assert torch.allclose(g0[name], g1[name], atol=1e-4, rtol=1e-3), name


def test_bucket_size_zero_is_one_padded_pass_in_input_order(tiny_encoder):
    model, tok = tiny_encoder
    with torch.no_grad():
        whole = embed(model, tokenize(tok, TEXTS, "passage: ", 16), "mean")
        for size in (0, len(TEXTS), 100):
            assert torch.equal(embed_texts(model, tok, TEXTS, "passage: ", 16, "mean", size), whole)
        bucketed = embed_texts(model, tok, TEXTS, "passage: ", 16, "mean", 2)
    # the longest text lands in the first bucket, the shortest in the last: order is restored
    lengths = [len(tok("passage: " + t, truncation=True, max_length=16)["input_ids"]) for t in TEXTS]
    assert len(set(lengths)) > 2
    assert np.allclose(bucketed.numpy(), whole.numpy(), atol=1e-5)
