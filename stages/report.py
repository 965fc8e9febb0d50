"""report: all variants beside the paper's Tables 1 and 2 with article-clustered intervals and paired tests,
the paper's claims with verdicts; language-bias measures; per-language-pair matrices, heatmaps and paired
differences, per-language mAP, same-language share and loss-curve plots."""
import json

import pandas as pd

from hybrid_ir import aggregate, resampling, sweep
from hybrid_ir.claims import claims_record, claims_table, languages_trained_on, summary_sentence
from hybrid_ir.io import write_csv, write_json, write_parquet, write_text
from hybrid_ir.plots import (loss_curves, matrices_table, same_language_table, variant_matrices,
                             write_difference_heatmaps, write_heatmaps, write_share_bars)
from hybrid_ir.report import (DATASETS, MIRACL_MEASURES, SAME_LANGUAGE_LINES, SAMPLING_NAME, VARIANT_ORDER,
                              claims_lines, markdown_report, miracl_lines, pair_difference_lines)
from hybrid_ir.stage import DATA, REPORTS, model_dir, run
from hybrid_ir.statistics import bootstrap_datasets, cell_differences, stats_record, topic_bootstrap
from hybrid_ir.vocab import VARIANTS

COMPARISONS = [("hybrid", "mono"), ("hybrid", "cross")]  # per-language-pair paired differences
PER_LANG_KEYS = ["dataset", "setting", "query_lang", "passage_lang"]
PER_QUERY_KEYS = ["setting", "query_lang", "passage_lang", "query_index", "qid"]


def _read_runs(runs_of: dict):
    """Per variant, the mean over its seeds' runs: metrics, per-language rows, per-query tables
    ({dataset: {variant: {seed: table}}} as well, for the two-level resampling), training logs."""
    metrics, per_lang, per_query, by_seed, logs = {}, [], {d: {} for d in DATASETS}, {d: {} for d in DATASETS}, []
    for v, group in runs_of.items():
        metrics[v] = aggregate.seed_mean_metrics(
            [json.loads((REPORTS / "metrics" / f"{r.name}.json").read_text()) for r in group])
        tables = [pd.read_csv(REPORTS / "per_language" / f"{r.name}.csv") for r in group]
        per_lang.append(aggregate.seed_mean_table(tables, PER_LANG_KEYS).assign(variant=v))
        for d in DATASETS:
            seeds = {r.seed: pd.read_parquet(DATA / "eval_results" / r.name / f"{d}.parquet") for r in group}
            by_seed[d][v] = seeds
            per_query[d][v] = aggregate.seed_mean_table(list(seeds.values()), PER_QUERY_KEYS)
        logs += [pd.read_csv(model_dir(r.name) / "train_log.csv").assign(variant=v, seed=r.seed)
                 for r in group if r.trained]
    return metrics, pd.concat(per_lang), per_query, by_seed, pd.concat(logs)


def _sweep(params, by_seed, clusters, pools, trained) -> tuple[dict, list]:
    """The alpha curve (X-Y at 0, hybrid at mono_ratio, X-X-mono at 1, and the sampler.sweep runs), its plot,
    and the claims at each sweep alpha (hybrid's own are the main claims table)."""
    sp, tr, ev = params.sampler, params.train, params.eval
    points = sweep.sweep_points(tr.seeds, sp.sweep, sp.mono_ratio)
    per_alpha = {d: {a: {r.seed: by_seed[d][r.variant][r.seed] if r.alpha is None else
                         pd.read_parquet(DATA / "eval_results" / r.name / f"{d}.parquet") for r in group}
                     for a, group in points.items()} for d in DATASETS}
    frame = sweep.curve(per_alpha, clusters, n_boot=ev.bootstrap, seed=ev.bootstrap_seed)
    swept = {d: {a: t for a, t in by_alpha.items() if a in sp.sweep and a != sp.mono_ratio}
             for d, by_alpha in per_alpha.items()}
    baselines = {d: {v: by_seed[d][v] for v in ("base", "mono", "cross")} for d in DATASETS}
    table = sweep.verdicts(swept, baselines, clusters, pools, n_boot=ev.bootstrap, seed=ev.bootstrap_seed,
                           trained=trained)
    write_csv(REPORTS / "sweep.csv", frame)
    sweep.write_plot(REPORTS / "plots" / "sweep.png", frame, DATASETS)
    verdicts = claims_record(table)["rows"] if not table.empty else []
    return ({"curve": frame.to_dict(orient="records"), "verdicts": verdicts, "best_of_both": sweep.best_of_both(table)},
            sweep.lines(frame, table, DATASETS))


def main(params, argv):
    runs_of = aggregate.variant_runs(params.train.seeds)
    metrics, per_lang, per_query, by_seed, losses = _read_runs(runs_of)
    ev, tr = params.eval, params.train
    best = ", ".join(f"{r.name} {json.loads((REPORTS / 'metrics' / f'{r.name}.json').read_text())['train']['best_step']}"
                     for v in VARIANTS for r in runs_of[v])
    notes = [
        f"Encoder: `{params.model.source}`; at most {tr.steps} steps of batch {tr.batch_size} per variant, "
        f"weights of the best validation loss ({tr.val_questions} held-out question ids; best step: {best or 'n/a'}); "
        f"hybrid mono_ratio {params.sampler.mono_ratio}; training seeds {', '.join(map(str, tr.seeds))} (every "
        "trained number is the mean over them).",
        f"XQuAD-R: {params.split.eval_articles} held-out articles, {len(ev.xquad_r_languages)} languages. "
        f"MLQA-R: {ev.mlqa_r_question_ids or 'all'} sampled question ids, {len(ev.mlqa_r_languages)} languages "
        "(zero-shot: no MLQA-R data is trained on; the leak guard drops training articles sharing an id, "
        "title or sentence with either evaluation set).",
        "mAP multi is the macro average over query languages (`map.multi_micro` in the metrics files is "
        "LAReQA's plain mean over questions). Paper rows: XLM-R / LaBSE trained on its in-house data.",
    ]
    intervals, pairs = bootstrap_datasets(per_query, n_boot=ev.bootstrap, seed=ev.bootstrap_seed)
    record = stats_record(intervals, pairs, ev.bootstrap, ev.bootstrap_seed)  # question ids, for comparison
    # the claims and results.md: articles as clusters, then training seeds (train.seeds)
    clusters = {d: resampling.article_clusters(pd.read_parquet(DATA / "eval" / d / "queries.parquet"))
                for d in DATASETS}
    pools = {d: len(pd.read_parquet(DATA / "eval" / d / "candidates.parquet", columns=["cid"])) for d in DATASETS}
    trained = languages_trained_on(json.loads((REPORTS / "pairs.json").read_text())["per_pair"])
    claims, clustered = claims_table(by_seed, clusters, pools, n_boot=ev.bootstrap, seed=ev.bootstrap_seed,
                                     trained=trained)
    coverage = resampling.coverage_sentence(clustered)
    c_intervals, c_pairs = resampling.frames(clustered)
    record["clustered"] = resampling.record(clustered)
    record["claims"] = claims_record(claims)
    write_csv(REPORTS / "claims.csv", claims)
    miracl_metrics = {v: aggregate.seed_mean_metrics([json.loads((REPORTS / "miracl" / f"{r.name}.json").read_text())
                                                      for r in group]) for v, group in runs_of.items()}
    m_intervals = m_pairs = None
    if any(miracl_metrics.values()):
        per_topic = {v: aggregate.seed_mean_table([pd.read_parquet(DATA / "miracl_runs" / r.name / "per_query.parquet")
                                                   for r in runs_of[v]]) for v in VARIANT_ORDER if miracl_metrics[v]}
        m_intervals, m_pairs = topic_bootstrap(per_topic, list(MIRACL_MEASURES), n_boot=ev.bootstrap,
                                               seed=ev.bootstrap_seed)
        record["miracl"] = stats_record(m_intervals, m_pairs, ev.bootstrap, ev.bootstrap_seed)
        record["miracl"]["method"].update(unit="topic, resampled within its language (seed + language index)",
                                          p_holm="Holm over the variant pairs of one language (or mean) and metric")
    record["sweep"], sweep_lines = _sweep(params, by_seed, clusters, pools, trained)
    write_json(REPORTS / "stats.json", record)
    extra = ["## mAP per language pair", "",
             "Rows: query language, columns: passage language; the diagonal is the mono setting.", ""]
    for d, title in DATASETS.items():
        matrices = variant_matrices(per_lang, d, VARIANT_ORDER)
        write_csv(REPORTS / "matrices" / f"{d}.csv", matrices_table(matrices))
        write_heatmaps(REPORTS / "plots" / f"heatmap_{d}.png", matrices, f"{title}: mAP per language pair",
                       SAMPLING_NAME)
        extra += [f"![{title}](plots/heatmap_{d}.png)", "", f"Table: [matrices/{d}.csv](matrices/{d}.csv)", ""]
        diffs = cell_differences(per_query[d], COMPARISONS, n_boot=ev.bootstrap, seed=ev.bootstrap_seed)
        for a, b in COMPARISONS:
            write_csv(REPORTS / "matrices" / f"{d}_diff_{a}_vs_{b}.csv", diffs[(diffs["a"] == a) & (diffs["b"] == b)])
        write_difference_heatmaps(REPORTS / "plots" / f"heatmap_{d}_diff.png", diffs, title, SAMPLING_NAME)
        extra += pair_difference_lines(d, title, COMPARISONS, ev.bootstrap)
    shares = same_language_table(per_lang, VARIANT_ORDER)
    write_csv(REPORTS / "plots" / "same_language_top10.csv", shares)
    write_share_bars(REPORTS / "plots" / "same_language_top10.png", shares, DATASETS, SAMPLING_NAME)
    extra += SAME_LANGUAGE_LINES + sweep_lines
    mp = params.miracl
    extra += miracl_lines(miracl_metrics, m_intervals, m_pairs,
                          f"`{mp.split}` topics with a relevant passage; index `{mp.index}`"
                          + (f"; only the first {mp.max_docs:,} passages of each corpus (a smoke run, not "
                             "comparable with published MIRACL numbers)" if mp.max_docs else "")
                          + f". Point estimate [95% bootstrap interval over topics, B = {ev.bootstrap}].")
    claim_text = claims_lines(claims, summary_sentence(claims, record["clustered"]["method"]["covers_training_seeds"]),
                              coverage)
    text, table = markdown_report(metrics, params.model.source, notes, c_intervals, c_pairs,
                                  ev.bootstrap, ev.bootstrap_seed, extra, claims=claim_text, coverage=coverage)
    write_text(REPORTS / "results.md", text)
    write_parquet(REPORTS / "results.parquet", table)
    plot = per_lang[per_lang["setting"] != "cross"][["variant", "dataset", "setting", "query_lang", "map"]]
    plot = plot.assign(series=plot["dataset"] + "/" + plot["setting"] + "/" + plot["query_lang"])
    write_csv(REPORTS / "plots" / "per_language_map.csv", plot)
    steps, val = loss_curves(losses)
    write_csv(REPORTS / "plots" / "train_loss.csv", steps)
    write_csv(REPORTS / "plots" / "val_loss.csv", val)


if __name__ == "__main__":
    run(main)
