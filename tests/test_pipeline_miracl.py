"""End to end, one training seed: MIRACL on a local copy, and what stops or stales an experiment; beside
test_pipeline.py (two seeds) so the two pipelines can run on two pytest-xdist workers at once."""
import json

import pytest

from tests.helpers import VARIANTS, per_run_stages, repro_tiny_pipeline, run, set_params, stages_run
from tests.miracl_fixture import from_xquad_r

pytestmark = pytest.mark.xdist_group("pipeline_miracl")
SEEDS = [13]
TRAINED = [f"{v}-{s}" for v in VARIANTS[1:] for s in SEEDS]
RUNS = ["base"] + TRAINED


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root, env, output = repro_tiny_pipeline(tmp_path_factory.mktemp("pipeline_miracl"), SEEDS)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "baseline"], root, env)  # dvc exp run starts from a commit
    return root, env, output


def _back_to_baseline(root, env) -> None:
    run(["git", "checkout", "--", "params.yaml", "dvc.lock"], root, env)
    run(["dvc", "checkout"], root, env)


def test_a_sampler_param_that_validation_reads_makes_every_train_stage_stale(pipeline):
    root, env, _ = pipeline
    assert json.loads(run(["dvc", "status", "--json"], root, env).stdout) == {}
    set_params(root, sampler={"cross_pairing": "per_batch"})
    try:  # dvc status names the stages whose own deps changed: every train stage (mono's validation batches
        stale = set(json.loads(run(["dvc", "status", "--json"], root, env).stdout))  # are cross too)
    finally:
        _back_to_baseline(root, env)
    assert stale == per_run_stages(SEEDS, ()) | {"params_check"}


def test_misspelt_param_in_exp_run_stops_the_run_before_work(pipeline):
    root, env, _ = pipeline
    before = (root / "reports" / "metrics" / "hybrid-13.json").read_bytes()
    # DVC refuses a plain unknown key itself; one appended with "+" is refused by params_check, the first
    # stage, whether or not another change comes with it
    plain = run(["dvc", "exp", "run", "-S", "sampler.mono_ratoi=0.3"], root, env, check=False)
    assert plain.returncode != 0 and "mono_ratoi" in plain.stderr
    for extra in ([], ["-S", "sampler.mono_ratio=0.3"]):
        try:
            proc = run(["dvc", "exp", "run", *extra, "-S", "+sampler.mono_ratoi=0.3"], root, env, check=False)
            assert proc.returncode != 0 and stages_run(proc.stdout + proc.stderr) == {"params_check"}
            assert ("error: sampler.mono_ratoi: unknown key; allowed here: mono_ratio, cross_pairing, sweep"
                    in proc.stderr + proc.stdout)
            assert (root / "reports" / "metrics" / "hybrid-13.json").read_bytes() == before
            assert not (root / "data" / "checkpoints" / "hybrid-13").exists()  # no training started
        finally:
            _back_to_baseline(root, env)


def test_miracl_stages_on_a_local_copy_in_the_hub_layout(pipeline, tmp_path_factory):
    root, env, _ = pipeline
    fixture = from_xquad_r(tmp_path_factory.mktemp("miracl"), "th", articles=range(3), docs_per_file=20)
    set_params(root, miracl=dict(languages=["th"], local_dir=str(fixture), shard_size=16, batch_size=32, max_length=32))
    out = run(["dvc", "repro"], root, env)
    assert stages_run(out.stdout + out.stderr) == {f"miracl_{s}_base" for s in ("encode", "evaluate")} | {
        f"miracl_{s}@{r}" for s in ("encode", "evaluate") for r in TRAINED} | {"params_check", "report"}
    for variant in RUNS:
        metrics = json.loads((root / "reports" / "miracl" / f"{variant}.json").read_text())
        assert metrics["th"]["topics"] > 50 and metrics["th"]["passages"] > 40
        assert 0 < metrics["th"]["ndcg_10"] <= 1 and 0 < metrics["mean"]["recall_100"] <= 1
        runs = root / "data" / "miracl_runs" / variant
        top = (runs / "th.run").read_text().splitlines()[0].split()
        assert top[1] == "Q0" and top[3] == "1" and top[5] == variant and (runs / "th.qrels").stat().st_size > 0
        shards = json.loads((root / "data" / "miracl" / "embeddings" / variant / "th" / "done.json").read_text())
        assert shards["shards"] == -(-metrics["th"]["passages"] // 16)
    report = (root / "reports" / "results.md").read_text()
    assert "## MIRACL (monolingual retrieval)" in report and "| X-Y | th |" in report
    stats = json.loads((root / "reports" / "stats.json").read_text())["miracl"]
    assert {(r["variant"], r["lang"]) for r in stats["intervals"]} >= {(v, "mean") for v in VARIANTS}
    shown = json.dumps(json.loads(run(["dvc", "metrics", "show", "--json"], root, env).stdout))
    assert "reports/miracl/hybrid-13.json" in shown and "ndcg_10" in shown
    # as if killed while writing the last shard: the next repro keeps the whole shards (persist: true)
    lang_dir = root / "data" / "miracl" / "embeddings" / "base" / "th"
    (lang_dir / "done.json").unlink()
    sorted(lang_dir.glob("shard-*.json"))[-1].unlink()
    kept = (lang_dir / "shard-00000.npy").stat().st_mtime_ns
    resumed = stages_run(run(["dvc", "repro"], root, env).stdout)
    assert "miracl_encode_base" in resumed
    assert resumed <= {"miracl_encode_base", "miracl_evaluate_base", "report"}
    assert (lang_dir / "shard-00000.npy").stat().st_mtime_ns == kept and (lang_dir / "done.json").exists()
    again = run(["dvc", "repro"], root, env)
    assert stages_run(again.stdout + again.stderr) == set()
