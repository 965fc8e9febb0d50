"""The pairs stage's product at the capped paper overlay's shape: the pair store against the table it replaced.

    python bench/pairs_scale.py                     # writes reports/scale_pairs.json
    python bench/pairs_scale.py --quick             # a tenth of the questions, for development

Shape of params.paper.yaml (no hub needed: the units are synthetic): 87,599 SQuAD questions in the nine
training languages (MLQA translate-train's ar de es hi zh, English, the MT stage's ru th tr) and a
100,000-query mMARCO sample in its seven; texts of about the real lengths (questions ~60 characters,
SQuAD sentences ~150, mMARCO passages ~330); SQuAD questions of one paragraph share its sentences.
Measured, each with its wall time, resident memory after it and its peak (VmHWM, reset before each
phase): building the store from the units (hybrid_ir.pair_store.PairStore.from_units), writing it, reading
it back memory-mapped, the sampler's index and the stage's counts, setting up the hybrid sampler and the
texts of 1,000 training batches. Beside them, the materialized pair table the stage wrote before (one row
per question x language x language with its three texts), built and written for a fraction of the
questions and extrapolated linearly (labelled as such).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scale import cpu_name, memory, phase  # noqa: E402
from hybrid_ir.io import write_json  # noqa: E402
from hybrid_ir.pair_store import TABLE_COLUMNS, PairStore  # noqa: E402
from hybrid_ir.sampling import BatchStream, HybridBatchSampler  # noqa: E402
from hybrid_ir.sources import UNIT_COLUMNS  # noqa: E402

SQUAD_LANGUAGES = ["ar", "de", "en", "es", "hi", "ru", "th", "tr", "zh"]
MMARCO_LANGUAGES = ["ar", "de", "en", "es", "hi", "ru", "zh"]
SQUAD_QUESTIONS, MMARCO_QUERIES = 87_599, 100_000
WORDS = np.array("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river city year war "
                 "music science history people government system company water energy".split())


def _texts(rng, n: int, chars: int, tag: str) -> list[str]:
    """n distinct texts of about `chars` characters."""
    words = WORDS[rng.integers(0, len(WORDS), size=(n, chars // 6))]
    return [f"{tag}{i} " + " ".join(w) for i, w in enumerate(words)]


def synthetic_units(squad: int, mmarco: int, seed: int = 0) -> pd.DataFrame:
    """Units (hybrid_ir.sources.UNIT_COLUMNS) of `squad` SQuAD-like and `mmarco` mMARCO-like questions."""
    rng = np.random.default_rng(seed)
    frames = []
    paragraphs = max(1, squad // 5)  # about five questions per paragraph, five sentences each
    for lang in SQUAD_LANGUAGES:
        sentences = _texts(rng, paragraphs * 5, 150, f"s{lang}")
        para = np.arange(squad) * paragraphs // max(1, squad)
        pick = rng.integers(0, 5, size=squad)
        frames.append(pd.DataFrame({
            "source": "squad_mlqa", "qid": [f"squad{i:07d}" for i in range(squad)], "title": [f"T{p // 10}" for p in para],
            "article": para // 10, "lang": lang, "query": _texts(rng, squad, 60, f"q{lang}"),
            "positive": [sentences[p * 5 + j] for p, j in zip(para, pick)],
            "negative": [sentences[p * 5 + (j + 1) % 5] for p, j in zip(para, pick)],
            "positive_id": [f"squad:{p}" for p in para], "negative_id": [f"squad:{p}" for p in para]}))
    for lang in MMARCO_LANGUAGES:
        frames.append(pd.DataFrame({
            "source": "mmarco", "qid": [f"mmarco:{i}" for i in range(mmarco)], "title": "", "article": -1,
            "lang": lang, "query": _texts(rng, mmarco, 40, f"m{lang}"),
            "positive": _texts(rng, mmarco, 330, f"p{lang}"), "negative": _texts(rng, mmarco, 330, f"n{lang}"),
            "positive_id": [f"mmarco:P{i}" for i in range(mmarco)],
            "negative_id": [f"mmarco:N{i}" for i in range(mmarco)]}))
    return pd.concat(frames, ignore_index=True)[UNIT_COLUMNS]


def materialized_table(units: pd.DataFrame) -> pd.DataFrame:
    """The table the stage wrote before the store: every question's k x k rows with their texts."""
    query_side = units[["qid", "article", "lang", "query", "source", "title"]].rename(columns={"lang": "query_lang"})
    passage_side = units[["qid", "lang", "positive", "negative", "positive_id", "negative_id"]].rename(
        columns={"lang": "passage_lang"})
    table = query_side.merge(passage_side, on="qid").sort_values(["qid", "query_lang", "passage_lang"],
                                                                 kind="stable", ignore_index=True)
    table["kind"] = np.where(table["query_lang"] == table["passage_lang"], "mono", "cross")
    return table[TABLE_COLUMNS]


def folder_mib(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def measure_store(units: pd.DataFrame, work: Path, results: dict) -> dict:
    store = phase("store_build", results, lambda: PairStore.from_units(units))
    phase("store_write", results, lambda: store.write(work / "store"))
    del store
    store = phase("store_read", results, lambda: PairStore.read(work / "store"))
    phase("index", results, lambda: store.index)
    counts = phase("counts", results, store.counts)
    sampler = phase("sampler_setup", results, lambda: HybridBatchSampler(store.index, 16, 0.5, 13))
    stream = BatchStream(sampler)
    phase("texts_of_1000_batches", results, lambda: [store.texts_of(next(stream).rows) for _ in range(1000)])
    return {"rows": counts["rows"], "units": len(store.units), "question_ids": counts["question_ids"],
            "texts": int(sum(len(t) for t in store.texts.values())),
            "text_mib": round(sum(t.nbytes for t in store.texts.values()) / 2**20, 1),
            "files_mib": folder_mib(work / "store")}


def measure_table(units: pd.DataFrame, work: Path, results: dict) -> dict:
    table = phase("table_build", results, lambda: materialized_table(units))
    phase("table_write", results, lambda: table.to_parquet(work / "pairs.parquet", index=False))
    return {"rows": len(table), "file_mib": round((work / "pairs.parquet").stat().st_size / 2**20, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the questions")
    ap.add_argument("--table-fraction", type=float, default=0.25,
                    help="share of the questions the materialized table is built for (extrapolated)")
    ap.add_argument("--out", default=str(REPO / "reports" / "scale_pairs.json"))
    args = ap.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    squad, mmarco = int(SQUAD_QUESTIONS * scale), int(MMARCO_QUERIES * scale)
    work = Path(tempfile.mkdtemp(prefix="pairs_scale."))
    try:
        store_phases: dict = {}
        units = phase("synthesize_units", store_phases, lambda: synthetic_units(squad, mmarco))
        store = measure_store(units, work, store_phases)
        del units
        f = args.table_fraction
        table_phases: dict = {}
        part = synthetic_units(int(squad * f), int(mmarco * f), seed=1)
        table = measure_table(part, work, table_phases)
        del part
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "shape": {"squad_questions": squad, "squad_languages": len(SQUAD_LANGUAGES), "mmarco_queries": mmarco,
                  "mmarco_languages": len(MMARCO_LANGUAGES)},
        "store": {**store, "phases": store_phases},
        "materialized_table": {
            **table, "fraction": f, "phases": table_phases,
            "extrapolated": {"rows": round(table["rows"] / f), "file_mib": round(table["file_mib"] / f),
                             "build_peak_mib": round(table_phases["table_build"]["peak_mib"] / f),
                             "write_peak_mib": round(table_phases["table_write"]["peak_mib"] / f)},
            "note": "built for a fraction of the questions; extrapolated linearly"},
        "memory_now_mib": memory()["rss_mib"],
    }
    write_json(Path(args.out), report)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
