"""Run names (hybrid_ir.runs), the seed-mean pooling of a variant's runs (hybrid_ir.aggregate) and the
alpha sweep's points (hybrid_ir.sweep)."""
import dataclasses

import pandas as pd
import pytest

from hybrid_ir import aggregate, runs, sweep
from hybrid_ir.declared import restrict
from hybrid_ir.errors import ParamsError
from hybrid_ir.params import parse_params


@pytest.mark.parametrize("name, run", [
    ("base", runs.Run("base")), ("mono-13", runs.Run("mono", 13)), ("hybrid-7", runs.Run("hybrid", 7)),
    ("hybrid-a0.25-13", runs.Run("hybrid", 13, 0.25)),
])
def test_run_names_round_trip(name, run):
    assert runs.parse(name) == run and run.name == name


@pytest.mark.parametrize("name", ["mono", "hybrid-13-1", "cross-a0.5-13", "hybrid-a1.0-13", "hybrid-a0-13", "x-13"])
def test_bad_run_names_are_refused(name):
    with pytest.raises(ParamsError, match="run"):
        runs.parse(name)


def test_a_runs_train_params_hold_its_seed_and_read_no_seeds_list():
    params = parse_params({"train": {"seeds": [13, 14]}})
    with pytest.raises(ParamsError, match="train.seeds: 2 seeds"):
        params.train.seed
    # a train stage does not declare train.seeds (adding a seed must not re-run it): it is never read
    guarded = restrict(params, "train_mono@14", ("train.steps", "train.lr", "sampler.cross_pairing") + tuple(
        f"train.{f.name}" for f in dataclasses.fields(params.train) if f.name != "seeds"))
    narrowed = runs.run_train_params(guarded.train, 14)
    assert narrowed.seed == 14 and narrowed.seeds == (14,) and narrowed.steps == params.train.steps
    assert type(narrowed).__name__ == "TrainParams"
    sampler = runs.run_sampler_params(guarded.sampler, runs.parse("hybrid-a0.25-14"))
    assert sampler.mono_ratio == 0.25 and sampler.cross_pairing == params.sampler.cross_pairing


@pytest.mark.parametrize("raw, message", [
    ({"train": {"seeds": []}}, "train.seeds: must not be empty"),
    ({"train": {"seeds": [13, 13]}}, "train.seeds: repeated values"),
    ({"train": {"seeds": [1.5]}}, "train.seeds: must be an integer"),
    ({"train": {"seed": 13}}, "train.seed: unknown key"),
    ({"sampler": {"sweep": [0.0]}}, "sampler.sweep: 0.0 is not strictly between 0 and 1"),
    ({"sampler": {"sweep": [0.25, 0.25]}}, "sampler.sweep: repeated values"),
])
def test_seed_and_sweep_params_are_validated(raw, message):
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("[", r"\[")):
        parse_params(raw)


def test_seed_mean_of_one_run_is_that_run_and_of_two_the_mean():
    a = pd.DataFrame({"qid": ["q1", "q2"], "lang": ["de", "en"], "ap": [0.5, 1.0], "n": [3, 4]})
    b = a.assign(ap=[0.25, 0.5])
    assert aggregate.seed_mean_table([a], ["qid", "lang"]).equals(a)
    mean = aggregate.seed_mean_table([a, b], ["qid", "lang"])
    assert mean["ap"].tolist() == [0.375, 0.75] and mean["n"].tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="different rows"):
        aggregate.seed_mean_table([a, b.iloc[::-1]], ["qid", "lang"])
    metrics = [{"xquad_r": {"map": {"multi": 0.5}}, "train": {"best_step": 100}},
               {"xquad_r": {"map": {"multi": 0.7}}, "train": {"best_step": 50}}]
    assert aggregate.seed_mean_metrics(metrics[:1]) == metrics[0]
    assert aggregate.seed_mean_metrics(metrics) == {"xquad_r": {"map": {"multi": pytest.approx(0.6)}},
                                                     "train": {"best_step": 75.0}}


def test_sweep_points_reuse_the_cross_mono_and_hybrid_runs():
    points = sweep.sweep_points([13, 14], [0.25, 0.5], 0.5)
    assert list(points) == [0.0, 0.25, 0.5, 1.0]
    assert [r.name for r in points[0.0]] == ["cross-13", "cross-14"]
    assert [r.name for r in points[0.5]] == ["hybrid-13", "hybrid-14"]  # the sweep's 0.5 is the hybrid run
    assert [r.name for r in points[0.25]] == ["hybrid-a0.25-13", "hybrid-a0.25-14"]
    assert [r.name for r in points[1.0]] == ["mono-13", "mono-14"]


def test_sweep_curve_and_verdicts_on_a_constructed_pool():
    from hybrid_ir.metrics import evaluate_pool
    from tests.helpers import random_pool

    def table(seed, skill):
        scores, kw = random_pool(30, seed, skill=skill)
        return evaluate_pool(scores, **kw).per_query_all

    tables = {a: {s: table(s, a) for s in (1, 2)} for a in (0.0, 0.5, 1.0)}
    per_query = {"xquad_r": tables}
    clusters = {"xquad_r": None}
    frame = sweep.curve(per_query, clusters, n_boot=50, seed=1)
    assert set(frame["alpha"]) == {0.0, 0.5, 1.0} and set(frame["metric"]) == set(sweep.CURVE_METRICS)
    assert (frame["lo"] <= frame["hi"]).all() and set(frame["n_seeds"]) == {2}
    base = {"xquad_r": {"base": tables[0.0], "mono": tables[1.0], "cross": tables[0.0]}}
    table = sweep.verdicts(per_query, base, clusters, {"xquad_r": 100}, n_boot=50, seed=1)
    assert set(table["alpha"]) == {0.5} and set(table["verdict"]) <= {"supported", "contradicted", "not resolved",
                                                                      "not evaluated"}
