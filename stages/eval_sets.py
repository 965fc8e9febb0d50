"""eval_sets: LAReQA pools: XQuAD-R on the held-out articles, MLQA-R on a seeded question sample."""
import json

from hybrid_ir.evalsets import load_pool, sample_question_ids
from hybrid_ir.io import write_parquet
from hybrid_ir.stage import DATA, run


def main(params, argv):
    corpora, ev = DATA / "corpora", params.eval
    held_out = set(json.loads((DATA / "pairs" / "split.json").read_text())["eval_articles"])
    qids = sample_question_ids(corpora / "mlqa_r", ev.mlqa_r_languages, ev.mlqa_r_question_ids, ev.seed)
    pools = {
        "xquad_r": load_pool(corpora / "xquad_r", ev.xquad_r_languages, articles=held_out),
        "mlqa_r": load_pool(corpora / "mlqa_r", ev.mlqa_r_languages, qids=qids),
    }
    for name, (queries, candidates) in pools.items():
        write_parquet(DATA / "eval" / name / "queries.parquet", queries)
        write_parquet(DATA / "eval" / name / "candidates.parquet", candidates)
        print(f"{name}: {len(queries)} questions, {len(candidates)} candidates")


if __name__ == "__main__":
    run(main)
