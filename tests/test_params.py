import re

import pytest
import yaml

from hybrid_ir.params import Params, ParamsError, load_params, parse_params
from tests.helpers import REPO


def test_repo_params_yaml_loads_and_matches_defaults():
    params = load_params(REPO / "params.yaml")
    assert params == Params()


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"sampler": {"mono_ratoi": 0.3}}, "sampler.mono_ratoi: unknown key"),
        ({"trian": {}}, "trian: unknown key"),
        ({"sampler": {"mono_ratio": 1.5}}, "sampler.mono_ratio: must be <= 1.0"),
        ({"sampler": {"mono_ratio": -0.1}}, "sampler.mono_ratio: must be >= 0.0"),
        ({"sampler": {"mono_ratio": "half"}}, "sampler.mono_ratio: must be a number"),
        ({"train": {"steps": 2.5}}, "train.steps: must be an integer"),
        ({"train": {"freeze_embeddings": "yes"}}, "train.freeze_embeddings: must be true or false"),
        ({"train": {"bf16": True}}, "train.bf16: unknown key"),
        ({"train": {"precision": "fp8"}}, "train.precision: must be one of auto, bf16, fp32, fp16"),
        ({"train": {"loss_form": "nce"}}, "train.loss_form: must be one of infonce, paper"),
        ({"train": {"batch_size": 10, "processes": 4}}, "train.processes: batch_size 10 is not divisible by 4"),
        ({"train": {"batch_size": 8, "processes": 2, "grad_accum_steps": 5}}, "train.grad_accum_steps: must be <= 4"),
        ({"train": {"val_questions": 1}}, "train.val_questions: 1 question makes no batch"),
        ({"train": {"patience": -1}}, "train.patience: must be >= 0"),
        ({"train": {"batch_size": 1}}, "train.batch_size: must be >= 2"),
        ({"sampler": {"cross_pairing": "per_pair"}}, "sampler.cross_pairing: must be one of per_triplet, per_batch"),
        ({"pairs": {"languages": ["en", "xx"]}}, "pairs.languages: unknown language(s) xx"),
        ({"pairs": {"sources": ["squad_mlqa"], "languages": ["en", "ro"]}}, "pairs.languages: no source provides ro"),
        ({"pairs": {"sources": ["wiki"]}}, "pairs.sources: must be distinct names among xquad, squad_mlqa, mmarco"),
        ({"pairs": {"source_weights": "size"}}, "pairs.source_weights: must be one of proportional, equal"),
        ({"split": {"train_articles": 0}}, "split.train_articles: the xquad source needs at least 1 training article"),
        ({"translate": {"languages": ["ru"]}}, "translate.sources: none of ['squad_mlqa'] is in pairs.sources"),
        ({"pairs": {"sources": ["squad_mlqa"], "languages": ["en", "de"]}, "translate": {"languages": ["ru"]}},
         "translate.languages: ru not in pairs.languages"),
        ({"translate": {"languages": ["xx"]}}, "translate.languages: unknown language(s) xx"),
        ({"pairs": {"languages": ["en"]}}, "pairs.languages: the cross and hybrid variants need at least 2"),
        ({"eval": {"mlqa_r_languages": ["en", "th"]}}, "eval.mlqa_r_languages: unknown language(s) th"),
        ({"split": {"train_articles": 40, "eval_articles": 12}}, "split: train_articles + eval_articles must be <= 48"),
        ({"model": {"pooling": "max"}}, "model.pooling: must be one of auto, mean, cls"),
        ({"eval": {"bootstrap": 10}}, "eval.bootstrap: must be >= 100"),
        ({"eval": {"trec_depth": 0}}, "eval.trec_depth: must be >= 1"),
        ({"eval": {"trec_settings": ["mono", "bilingual"]}}, "eval.trec_settings: must be distinct settings among mono, cross, multi"),
        ({"eval": {"trec_settings": ["mono", "mono"]}}, "eval.trec_settings: must be distinct settings"),
        ({"eval": {"trec_settings": []}}, "eval.trec_settings: must not be empty"),
        ({"eval": {"bootstrap_seed": 1.5}}, "eval.bootstrap_seed: must be an integer"),
        ({"encode": {"candidate_context": "yes"}}, "encode.candidate_context: must be true or false"),
    ],
)
def test_bad_params_name_the_key(raw, message):
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert message in str(err.value)


def test_ints_accepted_for_floats_and_partial_files_take_defaults():
    params = parse_params({"sampler": {"mono_ratio": 1}, "train": {"lr": 1}})
    assert params.sampler.mono_ratio == 1.0 and isinstance(params.sampler.mono_ratio, float)
    assert params.train.steps == Params().train.steps


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    bad.write_text(yaml.safe_dump({"train": 3}))
    with pytest.raises(ParamsError, match="train: must be a mapping"):
        load_params(bad)


def test_exponent_floats_as_dvc_writes_them(tmp_path):
    """`dvc exp run -S train.lr=3e-5` writes `lr: 3e-05`, a string to YAML 1.1 and a float to YAML 1.2."""
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    apply_overrides(str(path), ["train.lr=3e-5", "train.batch_size=100", "model.source=sentence-transformers/LaBSE"])
    assert "lr: 3e-05" in path.read_text()
    params = load_params(path)
    assert params.train.lr == 3e-5 and params.train.batch_size == 100


def test_paper_command_in_readme_passes_validation(tmp_path):
    """The README's `dvc exp run -S ...` for the paper's hyperparameters gives valid params."""
    import re

    from dvc.utils.hydra import apply_overrides

    readme = (REPO / "README.md").read_text()
    command = re.search(r"dvc exp run -S model\.source=sentence-transformers/LaBSE[^`]*", readme).group(0)
    overrides = re.findall(r"-S (\S+)", command)
    assert {"train.batch_size=100", "train.lr=3e-5"} <= set(overrides)
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    apply_overrides(str(path), overrides + ["train.processes=4"])
    params = load_params(path)
    assert params.train.batch_size == 100 and params.train.freeze_layers == 0 and not params.train.freeze_embeddings


def test_miracl_params_are_checked_by_name():
    from hybrid_ir.params import ParamsError, parse_params

    assert parse_params({"miracl": {"languages": ["sw", "yo"], "index": "ivfpq"}}).miracl.languages == ("sw", "yo")
    for raw, message in (({"languages": ["xx"]}, "miracl.languages: unknown language(s) xx"),
                         ({"depth": 50}, "miracl.depth: must be >= 100"),
                         ({"index": "hnsw"}, "miracl.index: must be one of flat, ivfpq"),
                         ({"nprob": 3}, "miracl.nprob: unknown key"),
                         ({"topics_revision": ""}, "miracl.topics_revision: must not be empty")):
        with pytest.raises(ParamsError, match=re.escape(message)):
            parse_params({"miracl": raw})
