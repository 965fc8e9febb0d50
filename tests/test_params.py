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
        ({"train": {"bf16": "yes"}}, "train.bf16: must be true or false"),
        ({"train": {"batch_size": 1}}, "train.batch_size: must be >= 2"),
        ({"sampler": {"cross_pairing": "per_pair"}}, "sampler.cross_pairing: must be one of per_triplet, per_batch"),
        ({"pairs": {"languages": ["en", "xx"]}}, "pairs.languages: unknown language(s) xx"),
        ({"pairs": {"languages": ["en", "ro"]}}, "pairs.languages: ro has no sentence breaks"),
        ({"pairs": {"languages": ["en"]}}, "pairs.languages: the cross and hybrid variants need at least 2"),
        ({"eval": {"mlqa_r_languages": ["en", "th"]}}, "eval.mlqa_r_languages: unknown language(s) th"),
        ({"split": {"train_articles": 40, "eval_articles": 12}}, "split: train_articles + eval_articles must be <= 48"),
        ({"model": {"pooling": "max"}}, "model.pooling: must be one of auto, mean, cls"),
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
