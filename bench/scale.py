"""The sampler at the paper's scale: a synthetic pair index shaped like its training data, in one run.

    python bench/scale.py                            # 10M questions x 9 languages; writes reports/scale.json
    python bench/scale.py --questions 40000000 --setup-only   # the paper's 40M: index and sampler setup only
    python bench/scale.py --quick                    # 200k questions, for development

Shape: 90% of the questions in 7 languages (mMARCO's ar de en es hi ru zh), 10% in all 9 (the QA pairs:
SQuAD / MLQA plus machine translation), one positive passage per question shared by its languages, one
negative per (question, language). Measured, each phase with its wall time, the resident memory after it
and its peak (VmHWM, reset before each phase): building the hybrid_ir.pair_index.PairIndex from the unit
arrays, setting up the hybrid sampler (batch 16, mono_ratio 0.5), one epoch's batches, and a stream
resumed mid-way through the next epoch. Beside them, the materialized sampler it replaced
(tests/sampler_oracle.py, one index entry per question x language x language) measured on a small
sample of the same shape, with its memory per question extrapolated linearly (labelled as such).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hybrid_ir.io import write_json  # noqa: E402
from hybrid_ir.pair_index import PairIndex  # noqa: E402
from hybrid_ir.sampling import BatchStream, HybridBatchSampler  # noqa: E402

LANGUAGES = ["ar", "de", "en", "es", "hi", "ru", "th", "tr", "zh"]
MMARCO = ["ar", "de", "en", "es", "hi", "ru", "zh"]


def memory() -> dict:
    """Resident and peak resident memory of this process, in MiB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"rss_mib": int(fields["VmRSS"].split()[0]) // 1024, "peak_mib": int(fields["VmHWM"].split()[0]) // 1024}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    except OSError:
        pass


def phase(name: str, results: dict, fn):
    reset_peak()
    t0 = time.perf_counter()
    out = fn()
    results[name] = {"seconds": round(time.perf_counter() - t0, 2), **memory()}
    print(f"{name}: {results[name]}", flush=True)
    return out


def synthetic_units(n: int, seed: int = 0):
    """(mask, positive code per unit, negative code per unit) of n questions in the paper's shape."""
    rng = np.random.default_rng(seed)
    bit = {lang: 1 << i for i, lang in enumerate(LANGUAGES)}
    mmarco, every = sum(bit[x] for x in MMARCO), sum(bit.values())
    mask = np.where(rng.random(n) < 0.9, mmarco, every).astype(np.uint32)
    k = np.bitwise_count(mask).astype(np.int64)
    pos = np.repeat(np.arange(n, dtype=np.int32), k)  # a question's positive, the same in every language
    neg = rng.integers(0, n, size=int(k.sum()), dtype=np.int32)
    return mask, pos, neg


def materialized_per_question(n: int) -> dict:
    """The replaced sampler's memory on n questions of the same shape, per question."""
    import pandas as pd

    from tests.sampler_oracle import MaterializedSampler

    mask, pos, neg = synthetic_units(n, seed=1)
    index = PairIndex(np.arange(n), LANGUAGES, mask, pos, neg)
    q = np.repeat(np.arange(n), index.k.astype(np.int64) ** 2)
    rows = []
    for i in range(n):  # every question's k x k rows, as the pairs stage writes them
        langs = [lang for lang in range(len(LANGUAGES)) if int(mask[i]) >> lang & 1]
        rows += [(x, y) for x in langs for y in langs]
    x, y = np.array(rows).T
    units = index.units(q, y)
    table = pd.DataFrame({"qid": q.astype(str), "query_lang": np.array(LANGUAGES)[x],
                          "passage_lang": np.array(LANGUAGES)[y], "positive_id": pos[units].astype(str),
                          "negative_id": neg[units].astype(str)})
    before = memory()["rss_mib"]
    reset_peak()
    sampler = MaterializedSampler(table, 16, 0.5, 13)
    held = memory()["rss_mib"] - before
    del sampler
    return {"questions": n, "rows": len(table), "mib": held, "bytes_per_question": round(held * 2**20 / n)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=10_000_000)
    ap.add_argument("--setup-only", action="store_true", help="index and sampler setup, no epoch")
    ap.add_argument("--quick", action="store_true", help="200k questions")
    ap.add_argument("--out", default=str(REPO / "reports" / "scale.json"))
    args = ap.parse_args(argv)
    n = 200_000 if args.quick else args.questions
    results: dict = {}
    mask, pos, neg = phase("synthesize_units", results, lambda: synthetic_units(n))
    index = phase("build_index", results, lambda: PairIndex(np.arange(n), LANGUAGES, mask, pos, neg))
    del mask, pos, neg
    sampler = phase("sampler_setup", results, lambda: HybridBatchSampler(index, 16, 0.5, 13))
    if not args.setup_only:
        batches = phase("epoch_batches", results, lambda: sampler.epoch_batches(0))
        results["epoch_batches"]["batches"] = len(batches)
        del batches
        mid = sampler.batches_per_epoch + sampler.batches_per_epoch // 2

        def resume():
            stream = BatchStream(sampler, start_step=mid)
            return [next(stream) for _ in range(100)]

        phase("resumed_stream", results, resume)
    k = index.k.astype(np.int64)
    report = {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "numpy": np.__version__},
        "shape": {"questions": n, "languages": len(LANGUAGES), "units": int(k.sum()), "rows": index.n_rows,
                  "rows_per_question": round(index.n_rows / n, 2)},
        "index_mib": round(sum(a.nbytes for a in (index.mask, index.k, index.unit_offset, index.row_offset,
                                                  index.pos, index.neg)) / 2**20),
        "phases": results,
    }
    small = materialized_per_question(5_000 if args.quick else 20_000)
    report["materialized_sampler"] = {**small, "extrapolated_mib_at_questions": round(
        small["bytes_per_question"] * n / 2**20), "note": "measured on the small sample, extrapolated linearly"}
    write_json(Path(args.out), report)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
