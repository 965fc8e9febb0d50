"""evaluate <variant>: exact full-depth LAReQA metrics per eval set into reports/."""
import pandas as pd

from hybrid_ir.index import CANDIDATES, QUERIES, load_encoded
from hybrid_ir.io import write_csv, write_json
from hybrid_ir.metrics import evaluate_pool
from hybrid_ir.params import ParamsError
from hybrid_ir.stage import DATASETS, REPORTS, index_dir, run


def main(params, argv):
    if len(argv) != 1:
        raise ParamsError("variant: expected one of base, mono, cross, hybrid")
    variant = argv[0]
    metrics, tables = {}, []
    for dataset in DATASETS:
        q_vec, q = load_encoded(index_dir(variant, dataset), QUERIES)
        c_vec, c = load_encoded(index_dir(variant, dataset), CANDIDATES)
        result = evaluate_pool(q_vec @ c_vec.T, q["lang"], q["qid"], c["lang"], c["qids"])
        metrics[dataset] = result.summary
        tables.append(result.table.assign(dataset=dataset, variant=variant))
    write_json(REPORTS / "metrics" / f"{variant}.json", metrics)
    write_csv(REPORTS / "per_language" / f"{variant}.csv", pd.concat(tables, ignore_index=True))


if __name__ == "__main__":
    run(main)
