"""miracl_evaluate <run>: search each MIRACL language's shards (exact and sharded, or IVF-PQ), write TREC
runs and per-topic nDCG@10 / Recall@100 (data/miracl_runs/) and the metrics (reports/miracl/)."""
import shutil

import numpy as np
import pandas as pd

from hybrid_ir import miracl
from hybrid_ir.errors import ParamsError
from hybrid_ir.io import atomic_path, write_json, write_parquet
from hybrid_ir.stage import DATA, REPORTS, run, run_name
from hybrid_ir.trec import read_trec, write_run


def main(params, argv):
    variant, miracl_params = run_name(argv), params.miracl
    from hybrid_ir.vector_search import ShardedVectors, make_searcher

    emb = DATA / "miracl" / "embeddings" / variant
    per_query, passages = [], {}
    with atomic_path(DATA / "miracl_runs" / variant, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        for lang in miracl_params.languages:
            lang_dir = emb / lang
            if not (lang_dir / "done.json").is_file():
                raise miracl.MiraclError(f"{lang_dir}: not encoded; run the miracl_encode@{variant} stage")
            vector_files, docid_files = miracl.shard_paths(lang_dir)
            vectors = ShardedVectors(vector_files)
            topics = pd.read_parquet(lang_dir / "queries.parquet")
            queries = np.load(lang_dir / "queries.npy")
            try:
                searcher = make_searcher(vectors, miracl_params)
            except ValueError as exc:  # the message names the param
                raise ParamsError(f"miracl.index {miracl_params.index}, {lang} ({vectors.ntotal} passages): {exc}; "
                                  "small corpora: use miracl.index flat") from exc
            print(f"miracl {variant} {lang}: {searcher.describe()}")
            scores, rows = searcher.search(queries, miracl_params.depth, desc=f"miracl {variant} {lang} search")
            run_ = miracl.run_of(topics["qid"], scores, miracl.docids_of(rows, docid_files, vectors.offsets))
            write_run(tmp / f"{lang}.run", run_, tag=variant)
            shutil.copyfile(lang_dir / "qrels.txt", tmp / f"{lang}.qrels")
            judged = miracl.judge(run_, read_trec(lang_dir / "qrels.txt", "qrels"))
            per_query.append(judged.assign(lang=lang))
            passages[lang] = vectors.ntotal
            print(f"miracl {variant} {lang}: nDCG@10 {judged['ndcg_10'].mean():.4f}, "
                  f"Recall@100 {judged['recall_100'].mean():.4f} over {len(judged)} topics, {vectors.ntotal} passages")
        table = (pd.concat(per_query, ignore_index=True) if per_query
                 else pd.DataFrame(columns=["qid", *miracl.MEASURES.values(), "lang"]))
        write_parquet(tmp / "per_query.parquet", table[["lang", "qid", *miracl.MEASURES.values()]])
    if not miracl_params.languages:
        print("miracl_evaluate: off (miracl.languages is empty)")
    write_json(REPORTS / "miracl" / f"{variant}.json", miracl.summarize(table, passages))


if __name__ == "__main__":
    run(main, uses_torch=False)
