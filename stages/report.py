"""report: all variants (each the mean over its training seeds) beside the paper's Tables 1 and 2 with
intervals that resample seeds and articles, the paper's claims with verdicts, the alpha curve;
language-bias measures; per-language-pair matrices, heatmaps and paired differences, per-language mAP,
same-language share and loss-curve plots."""
import json

import pandas as pd

from hybrid_ir import aggregate, resampling, sweep
from hybrid_ir.claims import claims_record, claims_table, languages_trained_on, summary_sentence
from hybrid_ir.io import write_csv, write_json, write_parquet, write_text
from hybrid_ir.plots import (loss_curves, matrices_table, same_language_table, variant_matrices,
                             write_difference_heatmaps, write_heatmaps, write_share_bars)
from hybrid_ir.report import (DATASETS, MIRACL_MEASURES, SAME_LANGUAGE_LINES, SAMPLING_NAME, VARIANT_ORDER,
                              best_steps, claims_lines, markdown_report, miracl_lines, miracl_note,
                              pair_difference_lines, per_language_plot, run_notes)
from hybrid_ir.stage import DATA, REPORTS, run
from hybrid_ir.statistics import bootstrap_datasets, cell_differences, stats_record, topic_bootstrap

COMPARISONS = [("hybrid", "mono"), ("hybrid", "cross")]  # per-language-pair paired differences


def main(params, argv):
    ev, tr, sp, mp = params.eval, params.train, params.sampler, params.miracl
    boot = {"n_boot": ev.bootstrap, "seed": ev.bootstrap_seed}
    res = aggregate.read_runs(aggregate.variant_runs(tr.seeds), REPORTS, DATA)
    notes = run_notes(params.model.source, tr, sp.mono_ratio, params.split.eval_articles, ev,
                      best_steps(res.per_run_metrics))
    intervals, pairs = bootstrap_datasets(res.per_query, **boot)
    record = stats_record(intervals, pairs, ev.bootstrap, ev.bootstrap_seed)  # question ids, for comparison
    # the claims and results.md: articles as clusters, then training seeds (train.seeds)
    clusters = {d: resampling.article_clusters(pd.read_parquet(DATA / "eval" / d / "queries.parquet"))
                for d in DATASETS}
    pools = {d: len(pd.read_parquet(DATA / "eval" / d / "candidates.parquet", columns=["cid"])) for d in DATASETS}
    trained = languages_trained_on(json.loads((REPORTS / "pairs.json").read_text())["per_pair"])
    claims, clustered = claims_table(res.by_seed, clusters, pools, trained=trained, **boot)
    coverage = resampling.coverage_sentence(clustered)
    c_intervals, c_pairs = resampling.frames(clustered)
    record["clustered"] = resampling.record(clustered)
    record["claims"] = claims_record(claims)
    write_csv(REPORTS / "claims.csv", claims)
    m_intervals = m_pairs = None
    if res.per_topic:
        m_intervals, m_pairs = topic_bootstrap(res.per_topic, list(MIRACL_MEASURES), **boot)
        record["miracl"] = stats_record(m_intervals, m_pairs, ev.bootstrap, ev.bootstrap_seed)
        record["miracl"]["method"].update(unit="topic, resampled within its language (seed + language index)",
                                          p_holm="Holm over the variant pairs of one language (or mean) and metric")
    curve, swept = sweep.sweep_tables(res.by_seed, DATA, tr.seeds, sp.sweep, sp.mono_ratio, clusters, pools,
                                      trained=trained, **boot)
    write_csv(REPORTS / "sweep.csv", curve)
    sweep.write_plot(REPORTS / "plots" / "sweep.png", curve, DATASETS)
    record["sweep"] = {"curve": curve.to_dict(orient="records"),
                       "verdicts": claims_record(swept)["rows"] if not swept.empty else [],
                       "best_of_both": sweep.best_of_both(swept)}
    write_json(REPORTS / "stats.json", record)
    extra = ["## mAP per language pair", "",
             "Rows: query language, columns: passage language; the diagonal is the mono setting.", ""]
    for d, title in DATASETS.items():
        matrices = variant_matrices(res.per_lang, d, VARIANT_ORDER)
        write_csv(REPORTS / "matrices" / f"{d}.csv", matrices_table(matrices))
        write_heatmaps(REPORTS / "plots" / f"heatmap_{d}.png", matrices, f"{title}: mAP per language pair",
                       SAMPLING_NAME)
        extra += [f"![{title}](plots/heatmap_{d}.png)", "", f"Table: [matrices/{d}.csv](matrices/{d}.csv)", ""]
        diffs = cell_differences(res.per_query[d], COMPARISONS, **boot)
        for a, b in COMPARISONS:
            write_csv(REPORTS / "matrices" / f"{d}_diff_{a}_vs_{b}.csv", diffs[(diffs["a"] == a) & (diffs["b"] == b)])
        write_difference_heatmaps(REPORTS / "plots" / f"heatmap_{d}_diff.png", diffs, title, SAMPLING_NAME)
        extra += pair_difference_lines(d, title, COMPARISONS, ev.bootstrap)
    shares = same_language_table(res.per_lang, VARIANT_ORDER)
    write_csv(REPORTS / "plots" / "same_language_top10.csv", shares)
    write_share_bars(REPORTS / "plots" / "same_language_top10.png", shares, DATASETS, SAMPLING_NAME)
    extra += SAME_LANGUAGE_LINES + sweep.lines(curve, swept, DATASETS)
    note = miracl_note(mp.split, mp.index, mp.max_docs, ev.bootstrap)
    extra += miracl_lines(res.miracl, m_intervals, m_pairs, note)
    claim_text = claims_lines(claims, summary_sentence(claims, record["clustered"]["method"]["covers_training_seeds"]),
                              coverage)
    text, table = markdown_report(res.metrics, params.model.source, notes, c_intervals, c_pairs,
                                  ev.bootstrap, ev.bootstrap_seed, extra, claims=claim_text, coverage=coverage)
    write_text(REPORTS / "results.md", text)
    write_parquet(REPORTS / "results.parquet", table)
    write_csv(REPORTS / "plots" / "per_language_map.csv", per_language_plot(res.per_lang))
    steps, val = loss_curves(res.losses)
    write_csv(REPORTS / "plots" / "train_loss.csv", steps)
    write_csv(REPORTS / "plots" / "val_loss.csv", val)


if __name__ == "__main__":
    run(main)
