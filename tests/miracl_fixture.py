"""Small MIRACL copies in the hub's layout, for offline tests and smoke runs.

`python -m tests.miracl_fixture OUT --languages th hi` writes topics, qrels and corpus files built from
XQuAD-R (../shared/corpora): each question is a topic, each sentence a passage (title: its article),
the answer sentence relevant (1) and two other sentences of its paragraph judged non-relevant (0).
"""
from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from hybrid_ir.evalsets import read_language
from hybrid_ir.miracl import corpus_dir, qrels_path, topics_path

try:
    from tests.helpers import SHARED_CORPORA
except ImportError:  # run as a script from elsewhere
    SHARED_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def write_layout(root: Path, lang: str, topics, qrels, docs, *, split: str = "dev", docs_per_file: int = 1000) -> Path:
    """topics [(qid, query)], qrels [(qid, docid, rel)], docs [{docid, title, text}] into root, hub layout."""
    root = Path(root)
    for rel, lines in ((topics_path(lang, split), [f"{q}\t{text}" for q, text in topics]),
                       (qrels_path(lang, split), [f"{q}\tQ0\t{d}\t{r}" for q, d, r in qrels])):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    folder = root / corpus_dir(lang)
    folder.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, max(len(docs), 1), docs_per_file)):
        with gzip.open(folder / f"docs-{i}.jsonl.gz", "wt", encoding="utf-8") as f:
            for doc in docs[start : start + docs_per_file]:
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return root


def from_xquad_r(root: Path, lang: str, *, articles=None, topic_articles=None, corpus: Path = SHARED_CORPORA,
                 docs_per_file: int = 1000) -> Path:
    """A MIRACL-layout copy of one XQuAD-R language (optionally only some article indices); topic_articles:
    only the questions of these articles become topics (every sentence of `articles` stays a passage)."""
    questions, sentences = read_language(Path(corpus) / "xquad-r" / f"{lang}.json", lang,
                                         set(articles) if articles is not None else None)
    if topic_articles is not None:
        questions = questions[questions["article"].isin(set(topic_articles))]
    docs, qrels = [], []
    by_paragraph = {}
    for row in sentences.itertuples():
        docid = f"{row.article}-{row.paragraph.split(':')[-1]}#{row.cid.split(':')[-1]}"
        docs.append({"docid": docid, "title": f"Article {row.article}", "text": row.text})
        by_paragraph.setdefault(row.paragraph, []).append((docid, set(row.qids)))
    for q in questions.itertuples():
        in_paragraph = by_paragraph[q.paragraph]
        qrels += [(q.qid, d, 1) for d, ids in in_paragraph if q.qid in ids]
        qrels += [(q.qid, d, 0) for d, ids in in_paragraph if q.qid not in ids][:2]
    topics = list(zip(questions["qid"], questions["text"]))
    return write_layout(root, lang, topics, qrels, docs, docs_per_file=docs_per_file)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--languages", nargs="+", default=["th", "hi"])
    parser.add_argument("--articles", type=int, default=0, help="first N XQuAD articles only; 0 = all 48")
    parser.add_argument("--held-out", type=Path, help="data/pairs/split.json: topics only from its eval_articles "
                        "(unseen in training; every article's sentences stay passages), to compare trained variants")
    args = parser.parse_args()
    articles = range(args.articles) if args.articles else None
    topic_articles = json.loads(args.held_out.read_text())["eval_articles"] if args.held_out else None
    for lang in args.languages:
        from_xquad_r(args.out, lang, articles=articles, topic_articles=topic_articles)
        print(f"{args.out}: MIRACL layout of XQuAD-R {lang}")
