"""The shared frozen bottom: vectors from the stored bottom equal the full pass byte for byte, and a
model whose bottom differs is encoded from its text."""
import copy

import numpy as np
import pytest
import torch

from hybrid_ir.encoder import encode
from hybrid_ir.shared_bottom import (Bottom, Settings, TextSet, compute_bottom, encode_sets, fingerprint,
                                     model_digest, shared_layers)

TEXTS = [("word " * (1 + (7 * i) % 23)) + f"text {i}" for i in range(70)] + ["Ok", "中国的首都是北京。"]
PARAGRAPHS = [f"a paragraph around sentence {i} " * (1 + i % 5) for i in range(len(TEXTS))]


def _set(precision="fp32", batch_size=16, context=False):
    return TextSet("pool", "candidates", TEXTS, PARAGRAPHS if context else None,
                   Settings("passage: ", 48, batch_size, precision, context))


def _encoded(model, tok, text_set, bottom_dir, pooling="mean"):
    """(vectors, served) of encode_sets for one set stored at bottom_dir/pool/candidates.safetensors."""
    [(_, vectors, served)] = encode_sets(model, tok, [text_set], bottom_dir, pooling=pooling, desc="t", progress=False)
    return vectors, served


def _serves(model, tok, text_set, path) -> bool:
    bottom = Bottom(path)
    return fingerprint(model_digest(model, tok, bottom.layers), bottom.layers, text_set.settings) == bottom.fingerprint


def _full(model, tok, text_set, pooling):
    s = text_set.settings
    return encode(model, tok, text_set.texts, prefix=s.prefix, pooling=pooling, batch_size=s.batch_size,
                  max_length=s.max_length, bf16=s.precision == "bf16", progress=False,
                  second_segments=text_set.second_segments)


def _trained(model, layer: int):
    """A copy of the model with one weight of `layer` changed, as training changes an unfrozen layer."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.encoder.layer[layer].output.dense.weight.mul_(1.5)
    return other


@pytest.mark.parametrize("precision,pooling,context", [("fp32", "mean", False), ("bf16", "mean", False),
                                                       ("fp32", "cls", True)])
def test_top_on_the_stored_bottom_equals_the_full_pass_byte_for_byte(tiny_encoder, tmp_path, precision, pooling,
                                                                     context):
    model, tok = tiny_encoder
    text_set = _set(precision, context=context)
    path = tmp_path / "pool" / "candidates.safetensors"
    tokens = compute_bottom(model, tok, text_set, path, layers=1, progress=False)
    assert tokens == sum(len(x) for x in tok(["passage: " + t for t in TEXTS],
                                             *([PARAGRAPHS] if context else []), truncation=True,
                                             max_length=48)["input_ids"])
    # the base model, and a trained run whose layer above the bottom changed: both served, both exact
    for m in (model, _trained(model, 1)):
        vectors, shared = _encoded(m, tok, text_set, tmp_path, pooling)
        assert shared
        assert np.array_equal(vectors, _full(m, tok, text_set, pooling))


def test_the_stored_bottom_is_the_same_bytes_every_time(tiny_encoder, tmp_path):
    """A function of its inputs (DVC hashes it; the encode stages depend on it): writing it again, in
    this process or another, gives the same file (safetensors orders several metadata keys at random)."""
    model, tok = tiny_encoder
    paths = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for path in paths:
        compute_bottom(model, tok, _set(), path, layers=1, progress=False)
    assert paths[0].read_bytes() == paths[1].read_bytes() == paths[2].read_bytes()


def test_a_model_with_another_bottom_is_encoded_from_its_text(tiny_encoder, tmp_path):
    model, tok = tiny_encoder
    text_set, path = _set(), tmp_path / "pool" / "candidates.safetensors"
    compute_bottom(model, tok, text_set, path, layers=1, progress=False)
    other = _trained(model, 0)  # a changed bottom layer: the stored states are not its own
    assert _serves(model, tok, text_set, path) and not _serves(other, tok, text_set, path)
    vectors, shared = _encoded(other, tok, text_set, tmp_path)
    assert not shared
    assert np.array_equal(vectors, _full(other, tok, text_set, "mean"))
    assert not np.array_equal(vectors, _full(model, tok, text_set, "mean"))


def test_other_settings_or_no_shared_layers_fall_back(tiny_encoder, tmp_path):
    model, tok = tiny_encoder
    path = tmp_path / "pool" / "candidates.safetensors"
    compute_bottom(model, tok, _set(batch_size=16), path, layers=1, progress=False)
    assert not _serves(model, tok, _set(batch_size=8), path)
    vectors, shared = _encoded(model, tok, _set(batch_size=8), tmp_path)
    assert not shared and np.array_equal(vectors, _full(model, tok, _set(batch_size=8), "mean"))
    compute_bottom(model, tok, _set(), path, layers=0, progress=False)  # nothing frozen: settings only
    assert Bottom(path).fingerprint is None and not _encoded(model, tok, _set(), tmp_path)[1]
    assert not _encoded(model, tok, _set(), tmp_path / "missing")[1]


def test_fingerprint_ignores_the_tokenizer_state_each_call_sets(tiny_encoder):
    """Fast tokenizers keep the last call's truncation and padding: the fingerprint must not."""
    model, tok = tiny_encoder
    s = _set().settings
    before = fingerprint(model_digest(model, tok, 1), 1, s)
    tok(["a b c"], truncation=True, max_length=7, padding="max_length")
    assert fingerprint(model_digest(model, tok, 1), 1, s) == before
    # layers above the bottom do not count; the bottom's weights and the settings do
    assert fingerprint(model_digest(_trained(model, 1), tok, 1), 1, s) == before
    assert fingerprint(model_digest(_trained(model, 0), tok, 1), 1, s) != before
    assert fingerprint(model_digest(model, tok, 1), 1, _set(precision="bf16").settings) != before
    assert model_digest(model, tok, 0) is None and model_digest(model, tok, 2) is None  # 2 = every layer
    assert fingerprint(None, 1, s) is None


def test_shared_layers_need_frozen_embeddings():
    class Train:
        freeze_layers, freeze_embeddings = 4, True

    assert shared_layers(Train) == 4
    Train.freeze_embeddings = False
    assert shared_layers(Train) == 0
