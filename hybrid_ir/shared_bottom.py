"""The frozen bottom of the encoder, computed once per eval text for every model that shares it.

Every trained run keeps the base model's embeddings and bottom `train.freeze_layers` layers bit for
bit, and encoding runs in eval mode (no dropout), so for the same token batch the hidden states after
those layers are the same for the base model and every trained run. The encode_bottom stage tokenizes
each eval text set once, runs the bottom on the length-sorted batches `encoder.encode` uses and stores
every batch's hidden states and mask (data/bottom/DATASET/NAME.safetensors). An encode stage then runs
only the top layers from there, if its model's bottom weights, tokenizer and the encode settings hash to
the stored fingerprint, and the whole model from the text otherwise. Same batches, same padding, same
kernels: the vectors are byte-identical to the full pass (tests/test_shared_bottom.py).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .encoder import _model_device, _pad_rows, _padding, _tokenize_unpadded, encode, pool
from .io import atomic_path
from .precision import autocast

FORMAT = 2  # 2: the metadata as one JSON key (byte-deterministic files)
META_KEY = "hybrid_ir.bottom"
# config fields that decide what the embeddings and a layer compute, besides their weights
_CONFIG_KEYS = ("model_type", "hidden_size", "num_attention_heads", "intermediate_size", "hidden_act",
                "layer_norm_eps", "position_embedding_type", "max_position_embeddings", "type_vocab_size",
                "pad_token_id", "_attn_implementation")


@dataclass(frozen=True)
class Settings:
    """What besides the weights decides the bottom's hidden states (the encode params of one text set)."""
    prefix: str
    max_length: int
    batch_size: int
    precision: str
    with_context: bool


@dataclass(frozen=True)
class TextSet:
    """One eval text set as the encode stages see it: its texts, second segments and settings."""
    dataset: str
    name: str
    texts: list
    second_segments: list | None
    settings: Settings


def text_sets(tables: dict, model_params, encode_params, precision: str, passage_names=("candidates",)):
    """The TextSet of every (dataset, name) table, in the tables' order: queries with the query prefix,
    candidates with the passage prefix (and their paragraph if encode.candidate_context)."""
    out = []
    for (dataset, name), table in tables.items():
        passage = name in passage_names
        context = passage and encode_params.candidate_context
        out.append(TextSet(dataset, name, table["text"].tolist(), table["context"].tolist() if context else None,
                           Settings(model_params.passage_prefix if passage else model_params.query_prefix,
                                    model_params.max_length, encode_params.batch_size, precision, context)))
    return out


def shared_layers(train_params) -> int:
    """How many bottom layers every trained run shares with the base model: train.freeze_layers when the
    embeddings are frozen too, else 0 (nothing shared)."""
    return train_params.freeze_layers if train_params.freeze_embeddings else 0


def _parts(model):
    """(the module holding `embeddings` and `encoder.layer`, the layer list), or None for another shape."""
    for owner in (model, getattr(model, "base_model", None)):
        layers = getattr(getattr(owner, "encoder", None), "layer", None)
        if hasattr(owner, "embeddings") and isinstance(layers, torch.nn.ModuleList):
            return owner, layers
    return None


def model_digest(model, tokenizer, layers: int) -> str | None:
    """sha256 of the embeddings and bottom `layers` layers (names, dtypes, shapes, bytes), the config
    fields they depend on and the tokenizer: what every text set of one model shares. None where the
    model cannot share (layers 0, every layer, or not a BERT-shaped encoder)."""
    parts = _parts(model)
    if layers <= 0 or parts is None or layers >= len(parts[1]):
        return None
    owner, stack = parts
    h = hashlib.sha256()
    config = {k: getattr(model.config, k, None) for k in _CONFIG_KEYS}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    modules = [("embeddings", owner.embeddings)] + [(f"layer.{i}", stack[i]) for i in range(layers)]
    for prefix, module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            h.update(f"{prefix}.{name}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(_tokenizer_json(tokenizer).encode())
    h.update(json.dumps([_padding(tokenizer), list(tokenizer.model_input_names)]).encode())
    return h.hexdigest()


def fingerprint(digest: str | None, layers: int, settings: Settings) -> str | None:
    """A text set's fingerprint: the model's digest (model_digest), the layer count and the settings."""
    if digest is None:
        return None
    return hashlib.sha256(json.dumps([FORMAT, layers, settings.__dict__, digest], sort_keys=True).encode()).hexdigest()


def _tokenizer_json(tokenizer) -> str:
    """The tokenizer's pipeline as JSON, without the truncation and padding state that each call sets."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return json.dumps(sorted(tokenizer.get_vocab().items()))
    spec = json.loads(backend.to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return json.dumps(spec, sort_keys=True)


class _Given(torch.nn.Module):
    """Stands in for the embeddings: returns the hidden states it was given."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden

    def forward(self, *args, **kwargs):
        return self.hidden


@contextlib.contextmanager
def _only_layers(model, start: int, stop: int, given: torch.Tensor | None = None):
    """The model with only layers [start, stop) and, if `given`, those hidden states as its input."""
    owner, stack = _parts(model)
    embeddings = owner.embeddings
    owner.encoder.layer = torch.nn.ModuleList(list(stack)[start:stop])
    if given is not None:
        owner.embeddings = _Given(given)
    try:
        yield model
    finally:
        owner.encoder.layer, owner.embeddings = stack, embeddings


def _batches(n: int, order: np.ndarray, batch_size: int):
    for start in range(0, n, batch_size):
        yield start // batch_size, order[start : start + batch_size]


def compute_bottom(model, tokenizer, text_set: TextSet, path: Path, *, layers: int, desc: str = "bottom",
                   progress: bool = True) -> int:
    """Tokenize the set once, run the bottom `layers` layers on encode's batches, write them to `path`
    (atomically); returns the number of tokens stored. Where nothing can be shared (layers 0, another
    model shape) the file holds the settings only, and every encode runs the whole model."""
    from safetensors.torch import save_file

    texts, settings = text_set.texts, text_set.settings
    stamp = fingerprint(model_digest(model, tokenizer, layers), layers, settings)
    ids, types = _tokenize_unpadded(tokenizer, texts, settings.prefix, settings.max_length, text_set.second_segments)
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    order = np.argsort(-lengths, kind="stable")  # longest first, as encoder.encode
    tensors = {"order": torch.from_numpy(order.copy())}
    pad_id, left = _padding(tokenizer)
    device = _model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(str(device), settings.precision), tqdm(
            total=len(ids), desc=desc, unit="text", disable=not progress or stamp is None
        ) as bar:
            for b, idx in (_batches(len(ids), order, settings.batch_size) if stamp else ()):
                batch = {k: v.to(device) for k, v in _pad_rows(ids, types, idx, pad_id, left).items()}
                with _only_layers(model, 0, layers):
                    hidden = model(**batch).last_hidden_state
                tensors[f"hidden.{b}"] = hidden.cpu().contiguous()
                tensors[f"mask.{b}"] = batch["attention_mask"].cpu()
                bar.update(len(idx))
    finally:
        model.train(was_training)
    meta = {"format": FORMAT, "fingerprint": stamp or "", "layers": layers, "texts": len(texts),
            "settings": settings.__dict__}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # one metadata key: safetensors writes several in a random order
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    return int(sum(int(t.sum()) for k, t in tensors.items() if k.startswith("mask.")))


class Bottom:
    """A stored bottom (memory-mapped): its fingerprint, and the top layers of a model run on it."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        self.path = Path(path)
        self._file = safe_open(str(self.path), framework="pt")
        meta = json.loads((self._file.metadata() or {}).get(META_KEY, "{}"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{self.path}: bottom format {meta.get('format')!r}, expected {FORMAT} "
                             "(run the encode_bottom stage again)")
        self.fingerprint = meta["fingerprint"] or None
        self.layers = meta["layers"]
        self.texts = meta["texts"]
        self.settings = Settings(**meta["settings"])

    def encode_top(self, model, *, pooling: str, desc: str = "encode top", progress: bool = True) -> np.ndarray:
        """float32 [n, dim] L2-normalised embeddings in input order: the model's layers from `layers` on,
        run on the stored hidden states, pooled as encoder.embed does."""
        order = self._file.get_tensor("order").numpy()
        device = _model_device(model)
        out = np.empty((self.texts, model.config.hidden_size), dtype=np.float32)
        n_layers = len(_parts(model)[1])
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), autocast(str(device), self.settings.precision), tqdm(
                total=self.texts, desc=desc, unit="text", disable=not progress
            ) as bar:
                for b, idx in _batches(self.texts, order, self.settings.batch_size):
                    hidden = self._file.get_tensor(f"hidden.{b}").to(device)
                    mask = self._file.get_tensor(f"mask.{b}").to(device)
                    # input_ids only give the shape: the embeddings are replaced by the stored states
                    with _only_layers(model, self.layers, n_layers, given=hidden):
                        last = model(input_ids=torch.zeros_like(mask), attention_mask=mask).last_hidden_state
                    emb = torch.nn.functional.normalize(pool(last.float(), mask, pooling), p=2, dim=-1)
                    out[idx] = emb.float().cpu().numpy()
                    bar.update(len(idx))
        finally:
            model.train(was_training)
        return out


def encode_sets(model, tokenizer, text_sets, bottom_dir: Path, *, pooling: str, desc: str, progress: bool = True):
    """Yield (text set, vectors, whether the stored bottom served) for each set: the model's top layers on
    the set's stored bottom (bottom_dir/DATASET/NAME.safetensors) where its fingerprint is this model's,
    else encoder.encode of the texts; the same bytes either way. The model is hashed once per layer count."""
    digests = {}
    for text_set in text_sets:
        path = Path(bottom_dir) / text_set.dataset / f"{text_set.name}.safetensors"
        bottom = Bottom(path) if path.is_file() else None
        label = f"{desc} {text_set.dataset} {text_set.name}"
        if bottom is not None and bottom.fingerprint and bottom.texts == len(text_set.texts):
            if bottom.layers not in digests:
                digests[bottom.layers] = model_digest(model, tokenizer, bottom.layers)
            if fingerprint(digests[bottom.layers], bottom.layers, text_set.settings) == bottom.fingerprint:
                yield text_set, bottom.encode_top(model, pooling=pooling, desc=f"{label} (top)", progress=progress), True
                continue
        s = text_set.settings
        yield text_set, encode(model, tokenizer, text_set.texts, prefix=s.prefix, pooling=pooling,
                               batch_size=s.batch_size, max_length=s.max_length, bf16=s.precision == "bf16",
                               desc=label, progress=progress, second_segments=text_set.second_segments), False
