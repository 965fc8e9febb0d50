"""The paper-scale data switch end to end, offline: params.paper.yaml applied the way `dvc exp run -S`
applies it, the hub replaced by fixture directories in the upstream layouts and the NLLB model by a
tiny random one; runs the real dvc.yaml up to the pairs stage in a temporary git + DVC repo."""
import json
import shutil
import sys

import pandas as pd
import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from hybrid_ir.overlay import set_params_args
from hybrid_ir.pair_store import PairStore
from hybrid_ir.sources import SOURCE_LANGUAGES
from tests import source_fixtures as fx
from tests.helpers import (REPO, SHARED_CORPORA, copy_pipeline, files_of, init_dvc_repo, run,
                           stages_run)


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    fixtures = tmp_path_factory.mktemp("hub")
    paper = yaml.safe_load((REPO / "params.paper.yaml").read_text())
    langs = paper["pairs"]["languages"]
    mlqa_langs = [lang for lang in langs if lang in SOURCE_LANGUAGES["squad_mlqa"] and lang != "en"]
    fx.write_squad_parquet(fixtures / "squad")
    fx.write_mlqa(fixtures / "mlqa", mlqa_langs)
    fx.write_mmarco(fixtures / "mmarco", [lang for lang in langs if lang in SOURCE_LANGUAGES["mmarco"]])
    model = fx.build_tiny_translation_model(fixtures / "tiny-nllb")
    copy_pipeline(root)
    apply_overrides(root / "params.yaml", set_params_args(REPO / "params.yaml", REPO / "params.paper.yaml")[1::2])
    apply_overrides(root / "params.yaml", [  # test-only: the hub and the model replaced by local copies
        f"data.mirror={json.dumps(str(SHARED_CORPORA))}", "data.allow_network=false",
        f"pairs.squad_dir={json.dumps(str(fixtures / 'squad'))}", f"pairs.mlqa_dir={json.dumps(str(fixtures / 'mlqa'))}",
        f"pairs.mmarco_dir={json.dumps(str(fixtures / 'mmarco'))}", f"translate.model={json.dumps(str(model))}",
        "translate.max_length=16", "translate.batch_size=8"])
    env = init_dvc_repo(root)
    first = run(["dvc", "repro", "pairs"], root, env)
    return root, env, first.stdout + first.stderr, langs


def test_paper_data_builds_every_language_pair_from_the_public_sources(paper_repo):
    root, env, output, langs = paper_repo
    assert stages_run(output) == {"params_check", "download", "translate", "pairs"}
    pairs = PairStore.read(root / "data" / "pairs" / "store").table()
    assert set(pairs["source"]) == {"squad_mlqa", "mmarco"}
    squad = pairs[pairs["source"] == "squad_mlqa"]
    assert set(squad["query_lang"]) == set(langs)  # ru, th, tr by the MT stage, the rest from MLQA
    assert squad.groupby("qid").size().eq(len(langs) ** 2).all()
    mmarco = pairs[pairs["source"] == "mmarco"]
    assert set(mmarco["query_lang"]) == {lang for lang in langs if lang in SOURCE_LANGUAGES["mmarco"]}
    metrics = json.loads((root / "reports" / "pairs.json").read_text())
    assert metrics["rows"] == len(pairs) and sum(metrics["per_pair"].values()) == len(pairs)
    assert metrics["per_pair"]["th-tr"] == squad["qid"].nunique()
    assert metrics["per_source"] == pairs.groupby("source").size().to_dict()
    assert set(json.loads((root / "reports" / "sentences.json").read_text())) >= {"en", "zh", "th"}
    split = json.loads((root / "data" / "pairs" / "split.json").read_text())
    assert split["train_articles"] == [] and len(split["eval_articles"]) == 48


def test_second_repro_runs_nothing(paper_repo):
    root, env, _, _ = paper_repo
    assert stages_run(run(["dvc", "repro", "pairs"], root, env).stdout) == set()


def test_translate_stage_on_two_processes_writes_the_cache_of_one(paper_repo):
    """translate.processes=2: the stage re-runs itself under torchrun (gloo), each rank translating every
    second batch; the cache is the bytes the one-process repro wrote (that ran on both cores, each rank on
    one: the tiny model's greedy choices are far from ties, test_sharded_work holds the threads equal)."""
    root, env, _, _ = paper_repo
    cache = root / "data" / "translate" / "cache"
    one = root / "cache-one-process"
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["translate"]["processes"] = 2
    (root / "params.two.yaml").write_text(yaml.safe_dump(params))
    shutil.move(cache, one)
    try:
        out = run([sys.executable, "stages/translate.py"], root, {**env, "HYBRID_IR_PARAMS": "params.two.yaml"})
        assert "translated" in out.stdout and "(rank 0 of 2)" in out.stderr  # rank 0's progress bar
        assert files_of(cache) == files_of(one) and len(files_of(one)) > 2  # parts and MANIFEST.json
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.move(one, cache)


def test_planted_leak_fails_the_pipeline_without_the_exclusion(paper_repo):
    root, env, _, _ = paper_repo
    mlqa_r = json.loads((SHARED_CORPORA / "mlqa-r" / "en.json").read_text())["data"][0]["title"]
    squad_dir = yaml.safe_load((root / "params.yaml").read_text())["pairs"]["squad_dir"]
    rows = fx.squad_rows()
    for row in rows[:2]:
        row["title"] = mlqa_r.replace(" ", "_")
    leaked = root.parent / "leaked_squad"
    (leaked / "plain_text").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(leaked / "plain_text" / "train-0.parquet")
    assert squad_dir != str(leaked)
    apply_overrides(root / "params.yaml", [f"pairs.squad_dir={json.dumps(str(leaked))}",
                                           "pairs.exclude_eval_overlap=false"])
    proc = run(["dvc", "repro", "pairs"], root, env, check=False)
    assert proc.returncode != 0
    assert "error: training pairs overlap the evaluation sets:" in proc.stdout + proc.stderr
    assert "by title" in proc.stdout + proc.stderr
