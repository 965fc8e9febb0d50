import random

import numpy as np
import pytest
import torch

from hybrid_ir.encoder import embed, encode, pool, tokenize

TEXTS = [
    "Short.",
    "The Panthers defense gave up just 308 points, ranking sixth in the league.",
    "Wie viele Punkte hat die Verteidigung der Panthers zugelassen?",
    "¿Cuántos puntos permitió la defensa de los Panthers?",
    "Сколько очков пропустила защита «Пантер»?",
    "パンサーズのディフェンスは何点を許しましたか？",
    "A somewhat longer sentence about the history of the Amazon rainforest and its rivers, "
    "written to be clearly longer than the others in this list.",
    "Ok",
    "Η άμυνα των Πάνθηρων δέχτηκε μόνο 308 πόντους.",
    "Savunma sadece 308 sayı verdi.",
    "中国的首都是北京。",
]


def test_pool_mean_and_cls():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])
    m = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.allclose(pool(h, m, "mean"), torch.tensor([[2.0, 3.0], [7.0, 8.0]]))
    assert torch.equal(pool(h, m, "cls"), torch.tensor([[1.0, 2.0], [5.0, 6.0]]))
    with pytest.raises(ValueError):
        pool(h, m, "max")


def test_tokenize_prefix_padding_truncation(tiny_encoder):
    _, tok = tiny_encoder
    b = tokenize(tok, ["a", "a much longer text with many words in it"], "query: ", 8)
    assert isinstance(b, dict)
    assert b["input_ids"].shape == (2, 8) and b["input_ids"][0, 0] == 0
    assert b["attention_mask"][0].sum() < 8 and b["attention_mask"][1].sum() == 8
    assert b["input_ids"][0, -1] == tok.pad_token_id
    plain = tok("query: a")["input_ids"]
    assert b["input_ids"][0, : len(plain)].tolist() == plain


def test_embed_keeps_gradients_and_normalises(tiny_encoder):
    model, tok = tiny_encoder
    e = embed(model, tokenize(tok, TEXTS[:3], "query: ", 32), "mean")
    assert e.requires_grad
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_encode_order_and_norms(tiny_encoder):
    model, tok = tiny_encoder
    kw = dict(prefix="passage: ", pooling="mean", batch_size=3, progress=False)
    ref = encode(model, tok, TEXTS, **kw)
    assert ref.dtype == np.float32 and ref.shape == (len(TEXTS), 32)
    assert np.allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-5)
    # rows are distinct, so an order bug would show
    sims = ref @ ref.T
    assert sims[~np.eye(len(TEXTS), dtype=bool)].max() < 0.9999
    perm = list(range(len(TEXTS)))
    random.Random(1).shuffle(perm)
    shuf = encode(model, tok, [TEXTS[i] for i in perm], **kw)
    for j, i in enumerate(perm):
        np.testing.assert_allclose(shuf[j], ref[i], atol=1e-5)
    # same as encoding one at a time (padding does not leak)
    single = np.stack([encode(model, tok, [t], **kw)[0] for t in TEXTS[:4]])
    np.testing.assert_allclose(single, ref[:4], atol=1e-5)
    # encode matches embed with the same prefix
    with torch.no_grad():
        e = embed(model, tokenize(tok, TEXTS, "passage: ", 256), "mean").numpy()
    np.testing.assert_allclose(e, ref, atol=1e-5)


def test_encode_cls_pooling_and_truncation(tiny_encoder):
    model, tok = tiny_encoder
    long = ["word " * 400]
    a = encode(model, tok, long, prefix="", pooling="cls", max_length=16, progress=False)
    b = encode(model, tok, ["word " * 14], prefix="", pooling="cls", max_length=16, progress=False)
    assert a.shape == (1, 32)
    np.testing.assert_allclose(a, b, atol=1e-5)  # both cut to the same 16 tokens


def test_encode_bf16_close_to_fp32(tiny_encoder):
    model, tok = tiny_encoder
    kw = dict(prefix="query: ", pooling="mean", batch_size=4, progress=False)
    f32 = encode(model, tok, TEXTS, **kw)
    b16 = encode(model, tok, TEXTS, bf16=True, **kw)
    assert b16.dtype == np.float32
    cos = (f32 * b16).sum(1) / np.linalg.norm(f32, axis=1) / np.linalg.norm(b16, axis=1)
    assert cos.min() > 0.99
    assert not np.array_equal(f32, b16)  # autocast really ran


def test_encode_empty(tiny_encoder):
    model, tok = tiny_encoder
    out = encode(model, tok, [], prefix="query: ", pooling="mean", progress=False)
    assert out.shape == (0, 32) and out.dtype == np.float32


def test_encode_restores_train_mode(tiny_encoder):
    model, tok = tiny_encoder
    model.train()
    try:
        encode(model, tok, TEXTS[:2], prefix="", pooling="mean", progress=False)
        assert model.training
    finally:
        model.eval()


def _pair_reference(model, tok, texts, segments, prefix, max_length):
    enc = tok([prefix + t for t in texts], segments, padding="longest", truncation=True, max_length=max_length,
              return_tensors="pt")
    with torch.no_grad():
        return embed(model, dict(enc), "mean").numpy()


def test_encode_text_pairs_keeps_the_sentence_and_cuts_the_paragraph(tiny_encoder):
    model, tok = tiny_encoder
    texts = TEXTS[:5]
    paragraphs = [" ".join(TEXTS[i:i + 4]) * (i + 1) for i in range(5)]  # unequal, some past max_length
    kw = dict(prefix="passage: ", pooling="mean", batch_size=2, max_length=24, progress=False)
    with_context = encode(model, tok, texts, second_segments=paragraphs, **kw)
    alone = encode(model, tok, texts, **kw)
    assert with_context.shape == alone.shape
    assert np.abs(with_context - alone).max() > 1e-3  # the paragraph changes the vector
    # length-sorted batches with pairs = one padded batch of the same pairs
    np.testing.assert_allclose(with_context, _pair_reference(model, tok, texts, paragraphs, "passage: ", 24), atol=1e-5)
    # longest-first truncation (BERT's truncate_seq_pair, as in LAReQA): a short sentence survives whole
    ids = tok("passage: " + texts[0], paragraphs[4], truncation=True, max_length=24)["input_ids"]
    sentence = tok("passage: " + texts[0])["input_ids"]
    assert len(ids) == 24 and ids[: len(sentence)] == sentence
    with pytest.raises(ValueError, match="2 second segments for 5 texts"):
        encode(model, tok, texts, second_segments=paragraphs[:2], **kw)


def test_encode_text_pairs_passes_token_types_when_the_tokenizer_has_them(tiny_encoder, tmp_path):
    from transformers import BertTokenizerFast

    model, _ = tiny_encoder
    words = sorted({w for t in TEXTS for w in t.lower().replace(".", " ").replace(",", " ").split()})
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    assert "token_type_ids" in tok.model_input_names
    texts, paragraphs = TEXTS[:4], [TEXTS[6], TEXTS[1], TEXTS[3], TEXTS[8]]
    got = encode(model, tok, texts, second_segments=paragraphs, prefix="", pooling="mean", batch_size=3, max_length=32,
                 progress=False)
    np.testing.assert_allclose(got, _pair_reference(model, tok, texts, paragraphs, "", 32), atol=1e-5)
