"""Encoder loading, pooling, prefixes and the batched encode loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .precision import autocast
from .tokenizer import load_tokenizer


def load_encoder(model_dir, device: str = "cpu"):
    """(model, tokenizer) from a local transformers directory; model in eval mode."""
    from transformers import AutoModel

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no transformers model directory at {model_dir}")
    kwargs = {} if _has_pooler_weights(model_dir) else {"add_pooling_layer": False}
    try:
        model = AutoModel.from_pretrained(str(model_dir), **kwargs)
    except TypeError:  # model class without a pooler option
        model = AutoModel.from_pretrained(str(model_dir))
    model.to(device)
    tokenizer = load_tokenizer(model_dir)
    model.eval()
    return model, tokenizer


def pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Masked mean over tokens ("mean") or the first token ("cls")."""
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
        summed = (last_hidden_state * mask).sum(dim=1)
        return summed / mask.sum(dim=1).clamp(min=1e-9)
    if pooling == "cls":
        return last_hidden_state[:, 0]
    raise ValueError(f"unknown pooling {pooling!r}: expected 'mean' or 'cls'")


def embed(model, batch: dict[str, torch.Tensor], pooling: str) -> torch.Tensor:
    """Forward + pool + L2-normalise (keeps gradients; pooled in float32)."""
    device = _model_device(model)
    batch = {k: v.to(device) for k, v in batch.items()}
    out = model(**batch)
    pooled = pool(out.last_hidden_state.float(), batch["attention_mask"], pooling)
    return F.normalize(pooled, p=2, dim=-1)


def tokenize(tokenizer, texts: list[str], prefix: str, max_length: int) -> dict[str, torch.Tensor]:
    """Prefix every text, pad to the longest in the batch, truncate at max_length."""
    enc = tokenizer(
        [prefix + t for t in texts],
        padding="longest",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return dict(enc)


def embed_texts(model, tokenizer, texts: list[str], prefix: str, max_length: int, pooling: str,
                bucket_size: int = 0) -> torch.Tensor:
    """embed() of tokenize(texts) in input order, keeping gradients.

    bucket_size > 0: forward passes over sub-batches of up to bucket_size texts sorted by token length,
    each padded to its own longest, instead of one pass padded to the batch's longest. Padding is masked
    and pooled out, so the embeddings and gradients are the same; the padded tokens (about half of a
    training batch of passages) are not computed.
    """
    texts = list(texts)
    if bucket_size <= 0 or len(texts) <= bucket_size:
        return embed(model, tokenize(tokenizer, texts, prefix, max_length), pooling)
    ids = tokenizer([prefix + t for t in texts], truncation=True, max_length=max_length,
                    return_attention_mask=False)["input_ids"]
    order = np.argsort([-len(x) for x in ids], kind="stable")  # longest first
    pad_id, left = _padding(tokenizer)
    parts = [embed(model, _pad_rows(ids, None, order[s : s + bucket_size], pad_id, left), pooling)
             for s in range(0, len(texts), bucket_size)]
    inverse = torch.empty(len(texts), dtype=torch.long)
    inverse[torch.from_numpy(order)] = torch.arange(len(texts))
    return torch.cat(parts)[inverse.to(parts[0].device)]


def _padding(tokenizer) -> tuple[int, bool]:
    """(pad token id, whether the tokenizer pads on the left)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return pad_id, getattr(tokenizer, "padding_side", "right") == "left"


def _pad_rows(ids, types, rows, pad_id: int, left: bool) -> dict[str, torch.Tensor]:
    """A model batch of the unpadded token ids `ids[i]` for i in rows, padded to their longest."""
    width = max(len(ids[i]) for i in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    type_ids = torch.zeros((len(rows), width), dtype=torch.long)
    for row, i in enumerate(rows):
        n = len(ids[i])
        sl = slice(width - n, width) if left else slice(0, n)
        input_ids[row, sl] = torch.as_tensor(ids[i], dtype=torch.long)
        mask[row, sl] = 1
        if types is not None:
            type_ids[row, sl] = torch.as_tensor(types[i], dtype=torch.long)
    batch = {"input_ids": input_ids, "attention_mask": mask}
    if types is not None:
        batch["token_type_ids"] = type_ids
    return batch


def encode(
    model,
    tokenizer,
    texts,
    *,
    prefix: str,
    pooling: str,
    batch_size: int = 64,
    max_length: int = 256,
    bf16: bool = False,
    desc: str = "encode",
    progress: bool = True,
    second_segments=None,
) -> np.ndarray:
    """float32 [n, dim] L2-normalised embeddings in input order (length-sorted batches).

    second_segments: optional second segments (e.g. a candidate's paragraph), one per text, with token
    type ids where the tokenizer has them. A pair is truncated longest-first to max_length (BERT's
    truncate_seq_pair, as in LAReQA): tokens come off the longer segment, nearly always the paragraph.
    """
    texts = list(texts)
    if second_segments is not None:
        second_segments = list(second_segments)
        if len(second_segments) != len(texts):
            raise ValueError(f"{len(second_segments)} second segments for {len(texts)} texts")
    if not texts:
        return np.zeros((0, model.config.hidden_size), dtype=np.float32)
    ids, types = _tokenize_unpadded(tokenizer, texts, prefix, max_length, second_segments)
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    order = np.argsort(-lengths, kind="stable")  # longest first
    return _embed_in_batches(model, tokenizer, ids, types, order, pooling=pooling, batch_size=batch_size,
                             bf16=bf16, desc=desc, progress=progress)


def _tokenize_unpadded(tokenizer, texts: list[str], prefix: str, max_length: int, second_segments):
    """(token ids, token type ids or None) of each prefixed text and its second segment, not padded."""
    with_types = second_segments is not None and "token_type_ids" in tokenizer.model_input_names
    enc = tokenizer(
        [prefix + t for t in texts],
        *([second_segments] if second_segments is not None else []),
        padding=False,
        truncation=True,  # longest_first
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=with_types,
    )
    return enc["input_ids"], (enc["token_type_ids"] if with_types else None)


def _embed_in_batches(model, tokenizer, ids, types, order, *, pooling: str, batch_size: int, bf16: bool,
                      desc: str, progress: bool) -> np.ndarray:
    """embed() of the token ids, `batch_size` at a time in `order`, each batch padded to its longest, dropout
    off and no graph; float32 rows in input order."""
    pad_id, left = _padding(tokenizer)
    device = _model_device(model)
    out = np.empty((len(ids), model.config.hidden_size), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(str(device), "bf16" if bf16 else "fp32"), tqdm(
            total=len(ids), desc=desc, unit="text", disable=not progress
        ) as bar:
            for start in range(0, len(ids), batch_size):
                idx = order[start : start + batch_size]
                batch = _pad_rows(ids, types, idx, pad_id, left)
                emb = embed(model, batch, pooling)
                out[idx] = emb.float().cpu().numpy()
                bar.update(len(idx))
    finally:
        model.train(was_training)
    return out


def _has_pooler_weights(model_dir: Path) -> bool:
    """False when the safetensors checkpoint has no pooler (e.g. converted e5)."""
    index = model_dir / "model.safetensors.index.json"
    single = model_dir / "model.safetensors"
    if index.is_file():
        keys = json.loads(index.read_text())["weight_map"].keys()
    elif single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt") as f:
            keys = list(f.keys())
    else:
        return True  # unknown format: keep the class default
    return any("pooler." in k for k in keys)


def _model_device(model) -> torch.device:
    return next(model.parameters()).device
