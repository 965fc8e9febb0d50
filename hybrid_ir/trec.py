"""TREC-format runs and qrels of every LAReQA setting, for trec_eval, pytrec_eval and ranx.

One directory per (variant, dataset) holds, for each exported setting s of mono, cross, multi
(`eval.trec_settings`), gzip-compressed (ir_measures and ranx read .gz by the suffix):
  s.run.gz    `qid Q0 docid rank score tag`, the top `depth` candidates of each query
  s.qrels.gz  `qid 0 docid 1`, the relevant candidates (every other candidate is non-relevant)
Query ids are unique within a setting: `{question id}@{query lang}>{passage lang}`
(`>all` in multi); docids are candidate ids (`lang:article:paragraph:sentence`). Queries with
no relevant candidate in the setting's pool are left out, as in hybrid_ir.metrics.

Ranking and ties follow hybrid_ir.metrics (a stable descending sort: among equal scores a
lower candidate row ranks first). trec_eval and ranx ignore the rank column and order equal
scores their own way (trec_eval by docid), so an exact tie is written with its score lowered
by one float32 ulp per place below the one before it: the written scores are strictly
decreasing and every tool sees our order. Scores are float32 cosines printed with 9
significant digits (round trip). The gzip header carries no name and no time: same lines, same bytes.
"""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .io import atomic_path, write_text
from .pool import cells, pool_arrays, relevant_columns
from .vocab import LAREQA_SETTINGS

SETTINGS = LAREQA_SETTINGS


def query_id(qid: str, query_lang: str, passage_lang: str) -> str:
    return f"{qid}@{query_lang}>{passage_lang}"


def run_line(qid: str, docid: str, rank: int, score: float, tag: str) -> str:
    """`qid Q0 docid rank score tag`, the score with 9 significant digits (a float32 round trip)."""
    return f"{qid} Q0 {docid} {rank} {score:.9g} {tag}"


def qrels_line(qid: str, docid: str, relevance: int) -> str:
    return f"{qid} 0 {docid} {relevance}"


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns [nq, k'], scores [nq, k']) of the top k' = min(k, nc) columns, metrics' tie rule."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def strictly_decreasing(top: np.ndarray) -> np.ndarray:
    """float32 copy of row-wise non-increasing scores with each tie pushed one ulp below the last."""
    out = np.array(top, dtype=np.float32, copy=True)
    for j in range(1, out.shape[1]):
        out[:, j] = np.minimum(out[:, j], np.nextafter(out[:, j - 1], np.float32(-np.inf)))
    return out


def trec_lines(scores, q_lang, q_qid, c_id, c_lang, c_qids, *, depth: int = 100, tag: str = "run",
               progress: bool = True, settings=SETTINGS) -> dict:
    """{setting: (run lines, qrels lines)} for one pool and the given settings; scores [nq, nc] as in
    evaluate_pool."""
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown TREC settings {sorted(unknown)}: expected some of {', '.join(SETTINGS)}")
    scores, q_lang, q_qid, c_lang = pool_arrays(scores, q_lang, q_qid, c_lang, c_qids)
    c_id = [str(x) for x in c_id]
    if len(c_id) != len(c_lang):
        raise ValueError(f"{len(c_id)} candidate ids for {len(c_lang)} candidates")
    answers = relevant_columns(c_qids)
    out = {s: ([], []) for s in SETTINGS if s in settings}
    wanted = [cell for cell in cells(q_lang, c_lang) if cell[0] in out]
    for setting, x, y, cols in tqdm(wanted, desc=f"trec {tag}", unit="cell", disable=not progress):
        in_pool = np.zeros(c_lang.size, dtype=bool)
        in_pool[cols] = True
        rows = [i for i in np.flatnonzero(q_lang == x) if any(in_pool[c] for c in answers.get(q_qid[i], ()))]
        if not rows or cols.size == 0:
            continue
        order, top = top_k(scores[np.ix_(rows, cols)], depth)
        top = strictly_decreasing(top).tolist()
        run, qrels = out[setting]
        for r, i in enumerate(rows):
            qname = query_id(q_qid[i], x, y)
            run.extend(run_line(qname, c_id[cols[j]], rank, s, tag)
                       for rank, (j, s) in enumerate(zip(order[r].tolist(), top[r]), start=1))
            qrels.extend(qrels_line(qname, c_id[c], 1) for c in answers[q_qid[i]] if in_pool[c])
    return out


def write_trec(directory, scores, q_lang, q_qid, c_id, c_lang, c_qids, *, depth: int = 100,
               tag: str = "run", settings=SETTINGS) -> None:
    """Write SETTING.run.gz and SETTING.qrels.gz for each of `settings` into `directory` (replaced whole)."""
    lines = trec_lines(scores, q_lang, q_qid, c_id, c_lang, c_qids, depth=depth, tag=tag, settings=settings)
    with atomic_path(directory, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        for setting, (run, qrels) in lines.items():
            for kind, rows in (("run", run), ("qrels", qrels)):
                data = "".join(line + "\n" for line in rows).encode()
                (tmp / f"{setting}.{kind}.gz").write_bytes(gzip.compress(data, compresslevel=6, mtime=0))


def write_run(path: Path, run: dict, tag: str) -> None:
    """A plain run file of {qid: {docid: score}}, each query's documents best first."""
    lines = []
    for qid, docs in run.items():
        ranked = sorted(docs.items(), key=lambda kv: -kv[1])
        lines.extend(run_line(qid, d, r, s, tag) for r, (d, s) in enumerate(ranked, start=1))
    write_text(path, "".join(line + "\n" for line in lines))


def write_qrels(path: Path, qrels: dict) -> None:
    """A plain qrels file of {qid: {docid: relevance}}."""
    write_text(path, "".join(qrels_line(q, d, r) + "\n" for q, docs in qrels.items() for d, r in docs.items()))


def parse_qrels(lines, where: str, error=ValueError) -> dict[str, dict[str, int]]:
    """{qid: {docid: relevance}} of (line number, text) pairs; blank lines skipped, a malformed one raises
    `error` naming where:number."""
    out: dict[str, dict[str, int]] = {}
    for number, line in lines:
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4 or not re.fullmatch(r"-?\d+", fields[3]):
            raise error(f"{where}:{number}: expected `qid Q0 docid relevance`, got {line[:80]!r}")
        out.setdefault(fields[0], {})[fields[2]] = int(fields[3])
    return out


def read_trec(path: str | Path, kind: str) -> dict:
    """A run ({qid: {docid: score}}) or qrels ({qid: {docid: rel}}) file, plain or .gz, as pytrec_eval
    takes them."""
    if kind not in ("run", "qrels"):
        raise ValueError(f"kind: 'run' or 'qrels', got {kind!r}")
    path = Path(path)
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    if kind == "qrels":
        return parse_qrels(enumerate(text.splitlines(), start=1), str(path))
    out: dict = {}
    for line in text.splitlines():
        f = line.split()
        out.setdefault(f[0], {})[f[2]] = float(f[4])
    return out
