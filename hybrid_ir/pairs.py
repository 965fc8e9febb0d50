"""Translated pair tables: one row per (question id, query language, passage language)."""
from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd

from .corpora import CorpusError, answer_sentence, iter_paragraphs, qa_answer_start, read_squad
from .evalsets import paragraph_key

COLUMNS = [
    "qid", "article", "query_lang", "passage_lang", "kind",
    "query", "positive", "negative", "positive_id", "negative_id",
]


def _paragraphs(xquad_dir: Path, xquad_r_dir: Path, lang: str):
    """XQuAD's paragraphs with XQuAD-R's sentence breaks, checked to share the same contexts."""
    q_path, r_path = Path(xquad_dir) / f"xquad.{lang}.json", Path(xquad_r_dir) / f"{lang}.json"
    plain = list(iter_paragraphs(read_squad(q_path), q_path))
    with_breaks = list(iter_paragraphs(read_squad(r_path), r_path))
    if len(plain) != len(with_breaks):
        raise CorpusError(f"{q_path} and {r_path}: {len(plain)} vs {len(with_breaks)} paragraphs")
    for (a, p, para), (_, _, rpara) in zip(plain, with_breaks):
        if para["context"] != rpara["context"]:
            raise CorpusError(f"{q_path} and {r_path}: article {a} paragraph {p} contexts differ")
        yield a, p, para, rpara["sentence_breaks"], q_path


def _sentences_by_language(xquad_dir, xquad_r_dir, languages, articles):
    """{lang: {qid: (query, article, para_key, answer index, sentences)}} and each article's paragraphs."""
    per_lang, article_paras = {}, {}
    for lang in languages:
        rows = {}
        for a, p, para, breaks, path in _paragraphs(xquad_dir, xquad_r_dir, lang):
            if a not in articles:
                continue
            sents = [para["context"][s:e] for s, e in breaks]
            article_paras.setdefault((lang, a), []).append((paragraph_key(a, p), sents))
            for qa in para["qas"]:
                where = f"{path} question {qa.get('id', '?')}"
                idx = answer_sentence(breaks, qa_answer_start(qa, where), where)
                rows[qa["id"]] = (qa["question"], a, paragraph_key(a, p), idx, sents)
        per_lang[lang] = rows
    return per_lang, article_paras


def _pick_negative(rng, lang, a, para_key, idx, sents, article_paras):
    """Another sentence of the same paragraph; another paragraph of the article if it has one sentence."""
    others = [i for i in range(len(sents)) if i != idx]
    if others:
        return sents[int(rng.choice(others))], para_key
    pool = [(k, s) for k, ss in article_paras[(lang, a)] if k != para_key for s in ss]
    key, text = pool[int(rng.integers(len(pool)))]
    return text, key


def build_pairs(xquad_dir: Path, xquad_r_dir: Path, languages, articles, seed: int) -> pd.DataFrame:
    """Every monolingual and ordered cross-lingual triplet of the given XQuAD articles.

    positive_id / negative_id are language-independent paragraph keys: the sampler keeps two
    triplets of one paragraph out of the same batch, so no in-batch negative is a translation of
    a positive.
    """
    languages = sorted(languages)
    articles = set(articles)
    per_lang, article_paras = _sentences_by_language(xquad_dir, xquad_r_dir, languages, articles)
    rng = np.random.default_rng(seed)
    passage = {}  # (qid, lang) -> (positive, negative, positive_id, negative_id)
    for lang in languages:
        for qid in sorted(per_lang[lang]):
            _, a, key, idx, sents = per_lang[lang][qid]
            neg, neg_key = _pick_negative(rng, lang, a, key, idx, sents, article_paras)
            passage[(qid, lang)] = (sents[idx], neg, key, neg_key)
    qids = sorted(set().union(*(per_lang[lang].keys() for lang in languages)))
    rows = []
    for qid in qids:
        for q_lang, p_lang in product(languages, languages):
            if qid not in per_lang[q_lang] or (qid, p_lang) not in passage:
                continue
            query, a = per_lang[q_lang][qid][:2]
            pos, neg, pos_id, neg_id = passage[(qid, p_lang)]
            kind = "mono" if q_lang == p_lang else "cross"
            rows.append((qid, a, q_lang, p_lang, kind, query, pos, neg, pos_id, neg_id))
    return pd.DataFrame(rows, columns=COLUMNS)


def pair_counts(pairs: pd.DataFrame) -> dict:
    """Row counts for a metrics file: totals, per kind and per ordered language pair."""
    by_pair = pairs.groupby(["query_lang", "passage_lang"]).size()
    return {
        "rows": int(len(pairs)),
        "question_ids": int(pairs["qid"].nunique()),
        "mono": int((pairs["kind"] == "mono").sum()),
        "cross": int((pairs["kind"] == "cross").sum()),
        "per_pair": {f"{q}-{p}": int(n) for (q, p), n in by_pair.items()},
    }
