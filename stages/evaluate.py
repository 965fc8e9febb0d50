"""evaluate <run>: exact full-depth LAReQA metrics and language-bias measures per eval set into
reports/; per-query results (data/eval_results/) and TREC runs and qrels (data/trec/) for the statistics
and other tools."""
import json

import pandas as pd

from hybrid_ir.bias import attach, language_bias
from hybrid_ir.index import CANDIDATES, QUERIES, load_encoded
from hybrid_ir.io import write_csv, write_json, write_parquet
from hybrid_ir.metrics import evaluate_pool
from hybrid_ir.stage import DATA, DATASETS, REPORTS, index_dir, model_dir, run, run_name
from hybrid_ir.trec import write_trec


def main(params, argv):
    variant = run_name(argv)
    metrics, tables = {}, []
    for dataset in DATASETS:
        q_vec, q = load_encoded(index_dir(variant, dataset), QUERIES)
        c_vec, c = load_encoded(index_dir(variant, dataset), CANDIDATES)
        scores = q_vec @ c_vec.T
        result = evaluate_pool(scores, q["lang"], q["qid"], c["lang"], c["qids"])
        bias = language_bias(scores, q["lang"], q["qid"], c["lang"], c["qids"])
        metrics[dataset] = {**result.summary, "bias": bias.summary}
        per_query, table = attach(result.per_query_all, result.table, bias)
        write_parquet(DATA / "eval_results" / variant / f"{dataset}.parquet", per_query)
        write_trec(DATA / "trec" / variant / dataset, scores, q["lang"], q["qid"], c["cid"], c["lang"], c["qids"],
                   depth=params.eval.trec_depth, tag=variant, settings=params.eval.trec_settings)
        tables.append(table.assign(dataset=dataset, variant=variant))
    summary = model_dir(variant) / "train_summary.json"
    if summary.exists():  # trained variants: the step early stopping chose
        trained = json.loads(summary.read_text())
        metrics["train"] = {k: trained[k] for k in ("best_step", "best_val_loss") if trained.get(k) is not None}
    write_json(REPORTS / "metrics" / f"{variant}.json", metrics)
    write_csv(REPORTS / "per_language" / f"{variant}.csv", pd.concat(tables, ignore_index=True))


if __name__ == "__main__":
    run(main)
