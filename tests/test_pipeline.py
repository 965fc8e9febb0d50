"""End to end: the real dvc.yaml in a temporary git + DVC repo, tiny random model, tiny data, no network;
one training seed, and a second one added near the end (the seed axis of the DAG, and the report's
intervals over seeds). MIRACL and failing experiments: test_pipeline_miracl.py."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import REPO, VARIANTS, per_run_stages, repro_tiny_pipeline, run, set_params, stages_run

pytestmark = pytest.mark.xdist_group("pipeline")  # one worker runs this module's tests in order
SEEDS = [13]
ADDED = 14  # test_adding_a_seed_runs_only_that_seeds_stages adds it and keeps it
TRAINED = [f"{v}-{s}" for v in VARIANTS[1:] for s in SEEDS]
RUNS = ["base"] + TRAINED


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return repro_tiny_pipeline(tmp_path_factory.mktemp("pipeline"), SEEDS)


def test_repro_runs_every_stage_and_writes_metrics(pipeline):
    root, env, output = pipeline
    expected = {"params_check", "download", "base_model", "translate", "pairs", "eval_sets", "report", "encode_bottom", "encode_base",
                "evaluate_base",
                "miracl_encode_base", "miracl_evaluate_base"}  # miracl_*: off, quick no-ops
    assert stages_run(output) == expected | per_run_stages(SEEDS)
    assert "incorrect regex pattern" not in output  # transformers 4.57's false alarm (hybrid_ir/tokenizer.py)
    assert json.loads((root / "reports" / "miracl" / "base.json").read_text()) == {}
    for variant in RUNS:
        metrics = json.loads((root / "reports" / "metrics" / f"{variant}.json").read_text())
        for dataset in ("xquad_r", "mlqa_r"):
            m = metrics[dataset]
            assert set(m["map"]) >= {"mono", "cross", "multi"} and 0 < m["map"]["multi"] <= 1
            assert set(m["recall"]) == {"mono_r1", "cross_r1", "multi_r10"} and m["rank_distance"] >= 0
            b = m["bias"]
            assert 0 <= b["peer"] <= 1 and 0 <= b["language_eta2"] <= 1 and -1 <= b["rank_corr"] <= 1
            assert 0 <= b["same_lang_top10"] <= 1 and 0 < b["same_lang_top10_blind"] < 1
        if variant != "base":  # the step early stopping chose, from train_summary.json
            assert 1 <= metrics["train"]["best_step"] <= 4 and metrics["train"]["best_val_loss"] > 0
        assert (root / "data" / "index" / variant / "xquad_r" / "candidates.faiss").exists()
        # every run keeps the base model's frozen layer (freeze_layers 1): each set encoded from the shared bottom
        shared = json.loads((root / "data" / "index" / variant / "encoding.json").read_text())["shared_bottom"]
        assert shared == {f"{d}/{n}": True for d in ("xquad_r", "mlqa_r") for n in ("queries", "candidates")}
    report = (root / "reports" / "results.md").read_text()
    assert "| paper | LaBSE | hybrid | 0.817 |" in report and "| this run | tiny-random | hybrid |" in report
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], root, env).stdout)
    files = json.dumps(shown)
    assert all(f"reports/metrics/{v}.json" in files for v in RUNS)


def test_evaluation_outputs_statistics_and_plots(pipeline, tmp_path):
    root, env, _ = pipeline
    for variant in RUNS:
        for dataset in ("xquad_r", "mlqa_r"):
            per_query = pd.read_parquet(root / "data" / "eval_results" / variant / f"{dataset}.parquet")
            assert set(per_query["setting"]) == {"mono", "cross", "multi"}
            trec = root / "data" / "trec" / variant / dataset
            assert sorted(p.name for p in trec.iterdir()) == [  # eval.trec_settings: mono, multi
                "mono.qrels.gz", "mono.run.gz", "multi.qrels.gz", "multi.run.gz"]
            assert all(p.stat().st_size > 0 for p in trec.iterdir())
    stats = json.loads((root / "reports" / "stats.json").read_text())
    assert {r["variant"] for r in stats["intervals"]} == set(VARIANTS) and len(stats["pairs"]) == 2 * 6 * 12
    report = (root / "reports" / "results.md").read_text()
    assert "## Paired differences between variants" in report and "| map.multi | hybrid − X-Y |" in report
    assert "| bias.rank_corr | hybrid − X-Y |" in report and "## Language bias beside rank distance" in report
    assert "| language-blind ranker (expected) |" in report
    # the claims table, on article clusters; el and vi are not in this tiny run's languages
    assert "## The paper's claims" in report and "but not training seeds: with one training seed" in report
    claims = stats["claims"]["rows"]
    assert len(claims) == 24 and {r["verdict"] for r in claims if r["scope"] == "el, vi"} == {"not evaluated"}
    assert stats["clustered"]["method"]["covers_training_seeds"] is False and len(stats["clustered"]["pairs"]) == 2 * 6 * 12
    assert "![XQuAD-R](plots/heatmap_xquad_r.png)" in report
    assert (root / "reports" / "matrices" / "mlqa_r.csv").read_text().startswith("variant,query_lang,de,en,es")
    diff = pd.read_csv(root / "reports" / "matrices" / "xquad_r_diff_hybrid_vs_cross.csv")
    assert len(diff) == 9 and (diff["lo"] <= diff["diff"]).all() and (diff["diff"] <= diff["hi"]).all()
    claims_csv = pd.read_csv(root / "reports" / "claims.csv")
    assert len(claims_csv) == 24 and set(claims_csv["verdict"]) <= {"supported", "contradicted", "not resolved",
                                                                     "not evaluated"}
    # the alpha curve: X-Y at 0, hybrid at mono_ratio 0.5, X-X-mono at 1
    curve = pd.read_csv(root / "reports" / "sweep.csv")
    assert sorted(curve["alpha"].unique()) == [0.0, 0.5, 1.0] and set(curve["n_seeds"]) == {1}
    assert (curve["lo"] <= curve["estimate"]).all() and (curve["estimate"] <= curve["hi"]).all()
    assert "## The alpha sweep" in report and "![alpha sweep](plots/sweep.png)" in report
    # dvc plots show renders the heatmaps as images and the bars and loss curves through their templates
    shown = json.loads(run(["dvc", "plots", "show", "--json", "-o", str(tmp_path / "plots")], root, env).stdout)["data"]
    for image_name in ("heatmap_xquad_r.png", "heatmap_mlqa_r.png", "heatmap_xquad_r_diff.png",
                       "same_language_top10.png", "sweep.png"):
        (image,) = shown[f"reports/plots/{image_name}"]
        assert image["type"] == "image" and Path(image["url"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name, field in (("per_language_map.csv", "variant"), ("train_loss.csv", "variant"), ("val_loss.csv", "variant"),
                        ("same_language_top10.csv", "variant")):
        (vega,) = shown[f"reports/plots/{name}"]
        assert vega["type"] == "vega" and vega["content"]["encoding"]["color"]["field"] == field
    (vega,) = shown["alpha_sweep"]
    assert vega["content"]["facet"]["field"] == "series" and len(vega["content"]["data"]["values"]) == len(curve)
    # the same per-query results give the same intervals, tests and heatmaps, bit for bit
    before = {p: (root / p).read_bytes() for p in ("reports/stats.json", "reports/results.md",
                                                   "reports/plots/heatmap_xquad_r.png",
                                                   "reports/matrices/mlqa_r_diff_hybrid_vs_mono.csv")}
    run(["dvc", "repro", "-f", "-s", "report"], root, env)
    assert all((root / p).read_bytes() == data for p, data in before.items())


def test_trained_models_share_the_frozen_shards_with_the_base_model(pipeline):
    root, _, _ = pipeline
    models = root / "data" / "models"
    index = json.loads((models / "base" / "model.safetensors.index.json").read_text())["weight_map"]
    embeddings, layer0 = index["embeddings.word_embeddings.weight"], index["encoder.layer.0.output.dense.weight"]
    for variant in TRAINED:  # train.freeze_layers 1: the embeddings and layer 0 are frozen
        for shard in (embeddings, layer0):
            assert (models / variant / shard).read_bytes() == (models / "base" / shard).read_bytes()
        top = index["encoder.layer.1.output.dense.weight"]
        assert (models / variant / top).read_bytes() != (models / "base" / top).read_bytes()


def test_second_repro_runs_nothing(pipeline):
    root, env, _ = pipeline
    again = run(["dvc", "repro"], root, env)
    assert stages_run(again.stdout + again.stderr) == set()


def test_alpha_sweep_trains_only_the_new_alphas_and_reports_them(pipeline):
    root, env, _ = pipeline
    set_params(root, sampler={"sweep": [0.25]})
    try:
        swept = run(["dvc", "repro"], root, env)
        assert stages_run(swept.stdout + swept.stderr) == {
            f"{k}_sweep@0.25-{s}" for k in ("train", "encode", "evaluate") for s in SEEDS} | {"params_check", "report"}
        curve = pd.read_csv(root / "reports" / "sweep.csv")
        assert sorted(curve["alpha"].unique()) == [0.0, 0.25, 0.5, 1.0]
        stats = json.loads((root / "reports" / "stats.json").read_text())["sweep"]
        assert {r["alpha"] for r in stats["verdicts"]} == {0.25} and len(stats["verdicts"]) == 24
        report = (root / "reports" / "results.md").read_text()
        assert "| 0.25 | XQuAD-R | mono mAP ≥ X-X-mono |" in report
    finally:
        set_params(root, sampler={"sweep": []})
    back = run(["dvc", "repro"], root, env)
    assert stages_run(back.stdout + back.stderr) == {"params_check", "report"}


def _lock_out_hash(root: Path, stage: str, path: str) -> str:
    outs = yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]["outs"]
    return next(o["md5"] for o in outs if o["path"] == path)


def test_identical_training_gives_identical_model_bytes_and_metrics(pipeline):
    root, env, _ = pipeline
    before = _lock_out_hash(root, "train_mono@13", "data/models/mono-13")
    metrics = (root / "reports" / "metrics" / "mono-13.json").read_bytes()
    rerun = run(["dvc", "repro", "-f", "-s", "train_mono@13"], root, env)
    assert stages_run(rerun.stdout) == {"train_mono@13"}
    assert _lock_out_hash(root, "train_mono@13", "data/models/mono-13") == before
    assert json.loads(run(["dvc", "status", "--json"], root, env).stdout) == {}  # nothing after it is stale
    run(["dvc", "repro", "-f", "-s", "encode@mono-13"], root, env)
    run(["dvc", "repro", "-f", "-s", "evaluate@mono-13"], root, env)
    assert (root / "reports" / "metrics" / "mono-13.json").read_bytes() == metrics


def test_editing_a_module_makes_stale_exactly_the_stages_that_import_it(pipeline):
    from hybrid_ir.declared import stage_instances
    from tests.test_declarations import import_closure

    root, env, _ = pipeline
    module = root / "hybrid_ir" / "index.py"
    original = module.read_text()
    module.write_text(original + "# a comment\n")
    try:
        stale = set(json.loads(run(["dvc", "status", "--json"], root, env).stdout))
    finally:
        module.write_text(original)
    entries = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    importers = set()
    for name, entry in entries.items():
        body = entry.get("do", entry)
        script = next(t for t in body["cmd"].split() if t.endswith(".py"))
        if "hybrid_ir/index.py" in import_closure(REPO / script):
            importers |= set(stage_instances(entry, name, params))
    kinds = ("encode", "evaluate", "miracl_evaluate")
    assert importers == {f"{k}_base" for k in kinds} | per_run_stages(SEEDS, kinds) - per_run_stages(SEEDS, ())
    assert stale == importers
    assert json.loads(run(["dvc", "status", "--json"], root, env).stdout) == {}


def test_mono_ratio_experiment_reruns_only_hybrid(pipeline):
    root, env, _ = pipeline
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "baseline"], root, env)
    exp = run(["dvc", "exp", "run", "-S", "sampler.mono_ratio=0.3"], root, env)
    ran = stages_run(exp.stdout + exp.stderr)
    # miracl_evaluate re-runs only if the embeddings changed: early stopping can keep the same weights
    hybrid = {f"train_hybrid@{s}" for s in SEEDS} | {f"{k}@hybrid-{s}" for k in ("encode", "evaluate", "miracl_encode")
                                                     for s in SEEDS}
    hybrid |= {"params_check", "report"}  # params_check: any change to params.yaml
    assert hybrid <= ran <= hybrid | {f"miracl_evaluate@hybrid-{s}" for s in SEEDS}
    shown = run(["dvc", "exp", "show", "--json"], root, env).stdout
    assert "0.3" in shown and "reports/metrics/hybrid-13.json" in shown


def test_adding_a_seed_runs_only_that_seeds_stages(pipeline):
    """Runs after the experiment (its params stay in the workspace) and keeps the added seed."""
    root, env, _ = pipeline
    set_params(root, train={"seeds": SEEDS + [ADDED]})
    added = run(["dvc", "repro"], root, env)
    assert stages_run(added.stdout + added.stderr) == per_run_stages([ADDED]) | {"params_check", "report"}
    assert _lock_out_hash(root, f"train_mono@{ADDED}", f"data/models/mono-{ADDED}") != _lock_out_hash(
        root, "train_mono@13", "data/models/mono-13")  # another seed, other weights
    stats = json.loads((root / "reports" / "stats.json").read_text())
    assert {r["n_seeds"] for r in stats["clustered"]["intervals"] if r["variant"] != "base"} == {2}
    assert stats["clustered"]["method"]["covers_training_seeds"] is True
    report = (root / "reports" / "results.md").read_text()
    assert "Intervals resample training seeds (2 per variant)" in report
    assert f"training seeds 13, {ADDED} (every trained number is the mean over them)" in report
    assert set(pd.read_csv(root / "reports" / "sweep.csv")["n_seeds"]) == {2}


def test_sigkill_during_training_resumes_on_next_repro(pipeline):
    root, env, _ = pipeline
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update(steps=40, checkpoint_every=2, patience=0)  # no early stop before the kill
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    checkpoint = root / "data" / "checkpoints" / "mono-13" / "checkpoint.pt"
    proc = subprocess.Popen(["dvc", "repro", "-s", "train_mono@13"], cwd=root, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert checkpoint.exists(), "no checkpoint was written before the deadline"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (root / ".dvc" / "tmp" / "rwlock").unlink(missing_ok=True)
    resumed = run(["dvc", "repro", "-s", "train_mono@13"], root, env)
    assert "Running stage 'train_mono@13'" in resumed.stdout
    summary = json.loads((root / "data" / "models" / "mono-13" / "train_summary.json").read_text())
    assert summary["steps"] == 40
    assert json.loads((root / "data" / "train_runs" / "mono-13.json").read_text())["resumed_from_step"] >= 2
    assert not checkpoint.exists()
    leftovers = [p.name for p in (root / "data" / "models").iterdir() if p.name.startswith(".")]
    assert leftovers == []
