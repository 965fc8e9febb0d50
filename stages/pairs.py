"""pairs: the article split and the translated pair table of the training articles."""
from hybrid_ir.evalsets import article_split
from hybrid_ir.io import write_json, write_parquet
from hybrid_ir.pairs import build_pairs, pair_counts
from hybrid_ir.stage import DATA, REPORTS, run


def main(params, argv):
    train_idx, eval_idx = article_split(params.split.train_articles, params.split.eval_articles, params.split.seed)
    corpora = DATA / "corpora"
    pairs = build_pairs(corpora / "xquad", corpora / "xquad_r", params.pairs.languages, train_idx, params.pairs.seed)
    write_parquet(DATA / "pairs" / "pairs.parquet", pairs)
    write_json(DATA / "pairs" / "split.json", {"train_articles": train_idx, "eval_articles": eval_idx})
    counts = pair_counts(pairs)
    write_json(DATA / "pairs" / "counts.json", counts)
    write_json(REPORTS / "pairs.json", {k: v for k, v in counts.items() if k != "per_pair"})
    print(f"pairs: {counts['rows']} rows, {counts['question_ids']} question ids, {len(params.pairs.languages)} languages")


if __name__ == "__main__":
    run(main)
