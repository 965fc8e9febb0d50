import json

import numpy as np
import pytest
import torch
from transformers import AutoModel, BertModel

from hybrid_ir.base_models import build_base_model
from hybrid_ir.encoder import encode, load_encoder
from hybrid_ir.model_dir import WEIGHTS_INDEX, read_weights, save_model, shard_file, shard_groups
from hybrid_ir.params import ModelParams
from hybrid_ir.training import freeze
from tests.helpers import files_of

TEXTS = [
    "How many points did the Panthers defense surrender?",
    "Wie viele Punkte hat die Verteidigung der Panthers zugelassen?",
    "¿Cuántos puntos permitió la defensa de los Panthers?",
    "Сколько очков пропустила защита «Пантер»?",
    "パンサーズのディフェンスは何点を許しましたか？",
    "The Panthers defense gave up just 308 points, ranking sixth in the league. " * 12,  # truncated
    "x",
]


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return tiny_model_dir


def test_shards_follow_a_fixed_rule_embeddings_each_layer_then_the_rest():
    names = ["pooler.dense.weight", "encoder.layer.10.output.dense.bias", "embeddings.word_embeddings.weight",
             "encoder.layer.2.attention.self.query.weight", "embeddings.LayerNorm.bias",
             "encoder.layer.2.output.dense.weight"]
    assert shard_groups(names) == [
        ["embeddings.LayerNorm.bias", "embeddings.word_embeddings.weight"],
        ["encoder.layer.2.attention.self.query.weight", "encoder.layer.2.output.dense.weight"],
        ["encoder.layer.10.output.dense.bias"],  # numeric layer order, not text order
        ["pooler.dense.weight"],
    ]
    assert shard_file(2, 13) == "model-00002-of-00013.safetensors"


def test_sharded_directory_loads_the_same_weights_as_save_pretrained(base, tmp_path):
    model, _ = load_encoder(base)
    ref = tmp_path / "unsharded"
    model.save_pretrained(ref, safe_serialization=True)
    index = json.loads((base / WEIGHTS_INDEX).read_text())
    assert sorted(set(index["weight_map"].values())) == [shard_file(i, 3) for i in (1, 2, 3)]  # embeddings, 2 layers
    assert not (base / "model.safetensors").exists()
    sharded, info = BertModel.from_pretrained(base, add_pooling_layer=False, output_loading_info=True)
    assert not any(info.values())  # no missing, unexpected or mismatched key
    plain = BertModel.from_pretrained(ref, add_pooling_layer=False)
    a, b = sharded.state_dict(), plain.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_weights(base).keys() == read_weights(ref).keys()
    assert all(torch.equal(v, read_weights(ref)[k]) for k, v in read_weights(base).items())
    assert json.loads((base / "config.json").read_text()) == json.loads((ref / "config.json").read_text())
    auto = AutoModel.from_pretrained(base)  # a pooler is added, randomly initialised, as before
    assert torch.equal(auto.embeddings.word_embeddings.weight, a["embeddings.word_embeddings.weight"])


def test_same_weights_give_the_same_bytes_and_frozen_shards_stay_byte_identical(base, tmp_path):
    model, tokenizer = load_encoder(base)
    mp = ModelParams(source="tiny-random")
    for name in ("again", "twice"):
        save_model(tmp_path / name, model, tokenizer, model_params=mp, pooling="mean", card="card\n")
    again, first = files_of(tmp_path / "again"), files_of(base)
    assert again == files_of(tmp_path / "twice")
    # a reloaded tokenizer writes its special tokens in full: those two small files differ from the base's
    tokenizer_files = ("special_tokens_map.json", "tokenizer_config.json")
    assert {k: v for k, v in again.items() if k not in ("README.md",) + tokenizer_files} == {
        k: v for k, v in first.items() if k not in ("README.md", "hybrid_ir_source.json") + tokenizer_files}
    # a "trained" model: embeddings and layer 0 frozen, layer 1 changed
    freeze(model, embeddings=True, layers=1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    save_model(tmp_path / "trained", model, tokenizer, model_params=mp, pooling="mean", card="card\n")
    trained = files_of(tmp_path / "trained")
    assert trained[shard_file(1, 3)] == first[shard_file(1, 3)]  # embeddings
    assert trained[shard_file(2, 3)] == first[shard_file(2, 3)]  # layer 0
    assert trained[shard_file(3, 3)] != first[shard_file(3, 3)]  # layer 1, trained
    assert trained[WEIGHTS_INDEX] == first[WEIGHTS_INDEX]


def test_sentence_transformersfiles_of(base):
    assert [m["path"] for m in json.loads((base / "modules.json").read_text())] == ["", "1_Pooling", "2_Normalize"]
    assert json.loads((base / "sentence_bert_config.json").read_text())["max_seq_length"] == 128
    pooling = json.loads((base / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    assert pooling["word_embedding_dimension"] == 32
    st = json.loads((base / "config_sentence_transformers.json").read_text())
    assert st["prompts"] == {"query": "query: ", "passage": "passage: "} and st["default_prompt_name"] is None
    card = (base / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sentence-transformers\n") and "tiny-random" in card
    assert "reports/metrics/base.json" in card


@pytest.mark.parametrize("pooling, max_length", [("mean", 128), ("cls", 16)])
def test_sentence_transformer_encodes_as_the_encode_stage(base, tmp_path, pooling, max_length):
    from sentence_transformers import SentenceTransformer

    mp = ModelParams(source="tiny-random", pooling=pooling, max_length=max_length, query_prefix="q: ",
                     passage_prefix="p: ")
    path = tmp_path / pooling
    build_base_model("tiny-random", path, mp)
    st = SentenceTransformer(str(path), device="cpu")
    assert st.max_seq_length == max_length
    model, tokenizer = load_encoder(path)
    for prompt, prefix in (("query", "q: "), ("passage", "p: ")):
        ours = encode(model, tokenizer, TEXTS, prefix=prefix, pooling=pooling, max_length=max_length, bf16=False,
                      batch_size=3, progress=False)
        theirs = st.encode(TEXTS, prompt_name=prompt, batch_size=4, convert_to_numpy=True)
        assert theirs.shape == ours.shape
        np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=0)
    other = encode(model, tokenizer, TEXTS, prefix="p: ", pooling="cls" if pooling == "mean" else "mean",
                   max_length=max_length, bf16=False, progress=False)
    assert np.abs(theirs - other).max() > 1e-3  # the comparison can tell the poolings apart
