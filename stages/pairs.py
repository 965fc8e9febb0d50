"""pairs: the article split and the translated pair store of the configured sources, leak-checked."""
from hybrid_ir.evalsets import article_split
from hybrid_ir.io import write_json
from hybrid_ir.pairs import build_training_pairs, metrics
from hybrid_ir.sentences import agreement
from hybrid_ir.stage import DATA, REPORTS, run
from hybrid_ir.vocab import XQUAD_R_LANGUAGES


def main(params, argv):
    train_idx, eval_idx = article_split(params.split.train_articles, params.split.eval_articles, params.split.seed)
    corpora = DATA / "corpora"
    store, report = build_training_pairs(params, corpora, DATA / "translate" / "cache", train_idx)
    store.write(DATA / "pairs" / "store")
    write_json(DATA / "pairs" / "split.json", {"train_articles": train_idx, "eval_articles": eval_idx})
    counts = store.counts()
    write_json(DATA / "pairs" / "counts.json", {**counts, **report})
    summary = metrics(counts, report)
    write_json(REPORTS / "pairs.json", summary)
    write_json(REPORTS / "sentences.json", agreement(corpora / "xquad_r", XQUAD_R_LANGUAGES))
    print(f"pairs: {counts['rows']} rows, {counts['question_ids']} question ids, {len(params.pairs.languages)} languages; "
          f"excluded {summary['excluded']}, skipped {report['skipped_total']}")


if __name__ == "__main__":
    run(main)
