"""Tiny public-source fixtures in their upstream layouts, and a tiny random translation model.

SQuAD v1.1 train as the hub's Parquet (``plain_text/train-*.parquet``: id, title, context, question,
answers{text, answer_start}) or ``train-v1.1.json``; MLQA translate-train as its SQuAD-format files
(``mlqa-translate-train/LANG_squad-translate-train-train-v1.1.json``, no titles); mMARCO as its TSV
files (``data/triples.train.ids.small.tsv``, ``data/google/queries/train/NAME_queries.train.tsv``,
``data/google/collections/NAME_collection.tsv``). Titles are made up, so no evaluation set shares one.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hybrid_ir.sentences import split
from hybrid_ir.sources import MMARCO_NAMES

# two articles, three paragraphs; each question's answer lies in one sentence
PARAGRAPHS = [
    ("Fixture_Alpha_Article", "The alpha river is long. It flows through three towns. Fishermen like its banks."),
    ("Fixture_Alpha_Article", "Dr. Brown built the first bridge in 1901. The bridge is made of red stone."),
    ("Fixture_Beta_Article", "Beta hill stands alone. Its summit holds an old tower. Hikers climb it each spring."),
]
QUESTIONS = [  # (id, paragraph, question, answer)
    ("fx000000000000000000000a", 0, "How many towns does the alpha river flow through?", "three towns"),
    ("fx000000000000000000000b", 0, "Who likes the banks of the alpha river?", "Fishermen"),
    ("fx000000000000000000000c", 1, "Who built the first bridge?", "Dr. Brown"),
    ("fx000000000000000000000d", 1, "What is the bridge made of?", "red stone"),
    ("fx000000000000000000000e", 2, "What does the summit of beta hill hold?", "an old tower"),
    ("fx000000000000000000000f", 2, "When do hikers climb beta hill?", "each spring"),
]


def squad_rows() -> list[dict]:
    rows = []
    for qid, p, question, answer in QUESTIONS:
        title, context = PARAGRAPHS[p]
        rows.append({"id": qid, "title": title, "context": context, "question": question,
                     "answers": {"text": [answer], "answer_start": [context.index(answer)]}})
    return rows


def write_squad_parquet(root: Path) -> Path:
    (root / "plain_text").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(squad_rows()).to_parquet(root / "plain_text" / "train-00000-of-00001.parquet", index=False)
    return root


def squad_json(rows) -> dict:
    """SQuAD format (data > paragraphs > qas) of HF-style rows."""
    articles = {}
    for r in rows:
        art = articles.setdefault(r["title"], {"title": r["title"], "paragraphs": []})
        paras = art["paragraphs"]
        if not paras or paras[-1]["context"] != r["context"]:
            paras.append({"context": r["context"], "qas": []})
        paras[-1]["qas"].append({"id": r["id"], "question": r["question"], "answers": [
            {"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]})
    return {"version": "1.1", "data": list(articles.values())}


def write_squad_json(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train-v1.1.json").write_text(json.dumps(squad_json(squad_rows())))
    return root


def translated_rows(lang: str, drop=()) -> list[dict]:
    """A stand-in 'translation': the English text tagged with the language, answers kept aligned."""
    rows = []
    for r in squad_rows():
        if r["id"] in drop:
            continue
        ctx = " ".join(f"{lang.upper()}: {s}" for s in split(r["context"], "en"))
        ans = r["answers"]["text"][0]
        rows.append({"id": r["id"], "title": r["title"], "context": ctx, "question": f"{lang.upper()}: {r['question']}",
                     "answers": {"text": [ans], "answer_start": [ctx.index(ans)]}})
    return rows


def write_mlqa(root: Path, languages, drop=()) -> Path:
    folder = root / "mlqa-translate-train"
    folder.mkdir(parents=True, exist_ok=True)
    for lang in languages:
        doc = squad_json(translated_rows(lang, drop))
        for art in doc["data"]:
            art.pop("title")  # MLQA translate-train files carry no usable title; the join gives SQuAD's
        (folder / f"{lang}_squad-translate-train-train-v1.1.json").write_text(json.dumps(doc, ensure_ascii=False))
    return root


MMARCO_QUERIES = {"101": "what is a fixture passage", "102": "how tall is the fixture tower",
                  "103": "who wrote the fixture book"}
MMARCO_PASSAGES = {"7": "A fixture passage is a short text used in tests.", "8": "The fixture tower is 40 m tall.",
                   "9": "The fixture book was written by nobody in particular.", "10": "Unrelated text about soup.",
                   "11": "Another unrelated passage about rain."}
MMARCO_TRIPLES = [("101", "7", "10"), ("101", "7", "11"), ("102", "8", "11"), ("103", "9", "10")]


def write_mmarco(root: Path, languages) -> Path:
    (root / "data" / "google" / "queries" / "train").mkdir(parents=True, exist_ok=True)
    (root / "data" / "google" / "collections").mkdir(parents=True, exist_ok=True)
    (root / "data" / "triples.train.ids.small.tsv").write_text("".join("\t".join(t) + "\n" for t in MMARCO_TRIPLES))
    for lang in languages:
        name = MMARCO_NAMES[lang]
        (root / "data" / "google" / "queries" / "train" / f"{name}_queries.train.tsv").write_text(
            "".join(f"{q}\t{lang.upper()}: {t}\n" for q, t in MMARCO_QUERIES.items()))
        (root / "data" / "google" / "collections" / f"{name}_collection.tsv").write_text(
            "".join(f"{p}\t{lang.upper()}: {t}\n" for p, t in MMARCO_PASSAGES.items()))
    return root


def build_tiny_translation_model(out: Path, seed: int = 0) -> Path:
    """A random NLLB-style model (M2M100 architecture + NllbTokenizerFast), built offline in seconds."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizerFast

    words = "<s> <pad> </s> <unk> the a of is in to and it what who how when".split()
    vocab = {w: i for i, w in enumerate(words)}
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789.,?![]":
        vocab.setdefault(ch, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = NllbTokenizerFast(tokenizer_object=backend, src_lang="eng_Latn", bos_token="<s>", eos_token="</s>",
                            pad_token="<pad>", unk_token="<unk>")
    config = M2M100Config(
        vocab_size=len(tok), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(config)
    with torch.no_grad():  # favour plain word tokens over language codes, so outputs are not empty
        model.lm_head.weight[len(vocab):] = 0
        model.lm_head.weight[4:len(vocab)] *= 50
    tok.save_pretrained(out)
    model.save_pretrained(out)
    return out
