"""LAReQA evaluation pools (XQuAD-R, MLQA-R): question and candidate-sentence tables."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .corpora import CorpusError, answer_sentence, iter_paragraphs, qa_answer_start, read_squad
from .vocab import XQUAD_ARTICLES


def article_split(train_articles: int, eval_articles: int, seed: int, n_articles: int = XQUAD_ARTICLES):
    """Disjoint, seeded train / eval article indices of XQuAD (the same articles in every language)."""
    order = np.random.default_rng(seed).permutation(n_articles)
    eval_idx = sorted(int(i) for i in order[:eval_articles])
    train_idx = sorted(int(i) for i in order[eval_articles : eval_articles + train_articles])
    return train_idx, eval_idx


def paragraph_key(article: int, paragraph: int) -> str:
    return f"{article}:{paragraph}"


def read_language(path: Path, lang: str, articles=None):
    """Questions and candidate sentences of one LAReQA file; `articles` limits to those indices."""
    queries, candidates = [], []
    for a_idx, p_idx, para in iter_paragraphs(read_squad(path), path):
        if articles is not None and a_idx not in articles:
            continue
        breaks = para.get("sentence_breaks")
        if not breaks:
            raise CorpusError(f"{path}: article {a_idx} paragraph {p_idx} has no sentence_breaks")
        context = para["context"]
        answers = [[] for _ in breaks]
        for qa in para["qas"]:
            where = f"{path} question {qa.get('id', '?')}"
            s_idx = answer_sentence(breaks, qa_answer_start(qa, where), where)
            answers[s_idx].append(qa["id"])
            queries.append((qa["id"], lang, qa["question"], a_idx, paragraph_key(a_idx, p_idx)))
        for s_idx, (start, end) in enumerate(breaks):
            candidates.append(
                (f"{lang}:{a_idx}:{p_idx}:{s_idx}", lang, context[start:end], answers[s_idx], a_idx,
                 paragraph_key(a_idx, p_idx), context)
            )
    q = pd.DataFrame(queries, columns=["qid", "lang", "text", "article", "paragraph"])
    # context: the whole paragraph, encoded beside the sentence when encode.candidate_context is on
    c = pd.DataFrame(candidates, columns=["cid", "lang", "text", "qids", "article", "paragraph", "context"])
    return q, c


def load_pool(corpus_dir: Path, languages, articles=None, qids=None):
    """The multilingual pool: (queries, candidates) over `languages`, in language order.

    With `qids`, keep only those questions and the candidates of paragraphs holding one of them
    (a seeded subsample that keeps each kept question's full paragraph as distractors).
    """
    qs, cs = [], []
    for lang in sorted(languages):
        q, c = read_language(Path(corpus_dir) / f"{lang}.json", lang, articles)
        if qids is not None:
            q = q[q["qid"].isin(qids)]
            keep = set(q["paragraph"])
            c = c[c["paragraph"].isin(keep)]
        qs.append(q)
        cs.append(c)
    queries = pd.concat(qs, ignore_index=True)
    candidates = pd.concat(cs, ignore_index=True)
    candidates["qids"] = candidates["qids"].map(lambda ids: [i for i in ids if qids is None or i in qids])
    return queries, candidates


def sample_question_ids(corpus_dir: Path, languages, n: int, seed: int):
    """A seeded sample of n question ids (all when n == 0 or n >= their number)."""
    ids = set()
    for lang in sorted(languages):
        for _, _, para in iter_paragraphs(read_squad(Path(corpus_dir) / f"{lang}.json"), corpus_dir):
            ids.update(qa["id"] for qa in para["qas"])
    ids = sorted(ids)
    if n == 0 or n >= len(ids):
        return set(ids)
    rng = np.random.default_rng(seed)
    return set(rng.choice(ids, size=n, replace=False).tolist())
