"""Leak guard: no evaluation question id, article title or passage text in the training data.

The evaluation side is XQuAD-R (every language, on the articles the training data must not touch)
and the whole of MLQA-R (every language, every question, not only the evaluated sample). Texts are
compared after NFKC, case folding and whitespace collapsing, as a whole and sentence by sentence
(:mod:`hybrid_ir.sentences`), so a training passage that contains an evaluation sentence is caught.
Texts shorter than :data:`MIN_CHARS` are not compared: fragments such as ``[citation needed]`` or
``ए.`` recur across unrelated articles and identify nothing. Titles are compared with ``_`` read as
a space (SQuAD and XQuAD write ``Super_Bowl_50``).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .corpora import CorpusError, iter_paragraphs, read_squad
from .sentences import split

MIN_CHARS = 20
EXAMPLES = 3


class LeakError(CorpusError):
    """Training data that overlaps an evaluation set: the message gives counts and examples."""


def normalize_text(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def normalize_title(title: str) -> str:
    return normalize_text(title.replace("_", " "))


@dataclass
class EvalSets:
    qids: set = field(default_factory=set)
    titles: set = field(default_factory=set)
    texts: set = field(default_factory=set)  # normalized sentences of at least MIN_CHARS

    def add_file(self, path: Path, articles=None) -> None:
        docs = read_squad(path)
        for a_idx, _, para in iter_paragraphs(docs, path):
            if articles is not None and a_idx not in articles:
                continue
            self.titles.add(normalize_title(docs[a_idx].get("title", "")))
            self.qids.update(qa["id"] for qa in para["qas"])
            context = para["context"]
            for start, end in para.get("sentence_breaks") or [(0, len(context))]:
                text = normalize_text(context[start:end])
                if len(text) >= MIN_CHARS:
                    self.texts.add(text)
        self.titles.discard("")


def eval_sets(xquad_r_dir: Path, mlqa_r_dir: Path, xquad_articles) -> EvalSets:
    """Question ids, titles and sentences of XQuAD-R (the given articles) and of all of MLQA-R."""
    ev = EvalSets()
    articles = set(xquad_articles)
    for path in sorted(Path(xquad_r_dir).glob("??.json")):  # one file per language (not MANIFEST.json)
        ev.add_file(path, articles)
    for path in sorted(Path(mlqa_r_dir).glob("??.json")):
        ev.add_file(path)
    return ev


def _text_hits(texts, ev: EvalSets) -> set:
    """The texts (as given) that are, or contain a sentence that is, an evaluation sentence."""
    hits = set()
    for text in texts:
        if not isinstance(text, str):
            continue
        whole = normalize_text(text)
        if len(whole) >= MIN_CHARS and whole in ev.texts:
            hits.add(text)
            continue
        for sent in split(text):
            s = normalize_text(sent)
            if len(s) >= MIN_CHARS and s in ev.texts:
                hits.add(text)
                break
    return hits


def find_leaks(frame: pd.DataFrame, ev: EvalSets) -> dict:
    """{kind: (row mask, example values)} of `frame` rows (units or pair rows) that overlap `ev`.

    Questions are matched by id, not by wording: short questions recur across unrelated articles.
    """
    titles = frame["title"].fillna("")
    bad_titles = {t for t in pd.unique(titles) if normalize_title(t) in ev.titles}
    passages = pd.unique(pd.concat([frame["positive"], frame["negative"]], ignore_index=True))
    bad_texts = _text_hits(passages, ev)
    masks = {
        "question_id": frame["qid"].isin(ev.qids),
        "title": titles.isin(bad_titles),
        "passage_text": frame["positive"].isin(bad_texts) | frame["negative"].isin(bad_texts),
    }
    examples = {
        "question_id": frame.loc[masks["question_id"], "qid"],
        "title": frame.loc[masks["title"], "title"],
        "passage_text": pd.Series(sorted(bad_texts), dtype=object),
    }
    return {kind: (mask, list(dict.fromkeys(map(str, examples[kind])))[:EXAMPLES]) for kind, mask in masks.items()}


def exclude_overlap(units: pd.DataFrame, ev: EvalSets):
    """Drop overlapping units before the table is built (a title or question id drops every unit
    of it; an evaluation sentence drops the unit holding it). Returns (units, {kind: count, examples})."""
    found = find_leaks(units, ev)
    drop = pd.Series(False, index=units.index)
    report = {}
    for kind, (mask, examples) in found.items():
        drop |= mask
        if mask.any():
            report[kind] = {"units": int(mask.sum()), "examples": examples}
    return units[~drop].reset_index(drop=True), report


def check_no_leak(units: pd.DataFrame, ev: EvalSets, rows: int) -> dict:
    """Raise LeakError when any training unit overlaps an evaluation set; else the checked sizes.

    Every row of the pair table takes its query, title and passages from units, so checking the units
    checks all `rows` of the table."""
    found = {kind: (mask, ex) for kind, (mask, ex) in find_leaks(units, ev).items() if mask.any()}
    if found:
        parts = [f"{int(mask.sum())} units by {kind} (e.g. {ex})" for kind, (mask, ex) in found.items()]
        raise LeakError("training pairs overlap the evaluation sets: " + "; ".join(parts)
                        + "; set pairs.exclude_eval_overlap to drop them before the pairs are built")
    return {"eval_question_ids": len(ev.qids), "eval_titles": len(ev.titles), "eval_sentences": len(ev.texts),
            "rows_checked": int(rows)}
