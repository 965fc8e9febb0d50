"""translate: machine-translate English training units into translate.languages (off when empty), cached."""
from hybrid_ir.evalsets import article_split
from hybrid_ir.pairs import prepare_units
from hybrid_ir.sources import Skips
from hybrid_ir.stage import DATA, run
from hybrid_ir.translate import requests, update_cache


def main(params, argv):
    wanted = {}
    if params.translate.languages:
        train_idx, _ = article_split(params.split.train_articles, params.split.eval_articles, params.split.seed)
        units, _, _ = prepare_units(params, DATA / "corpora", train_idx, Skips())
        wanted = requests(units, params.translate)
    stats = update_cache(DATA / "translate" / "cache", wanted, params.translate)
    for lang, s in stats.items():
        print(f"translate en->{lang}: {s['requested']} texts, {s['cached']} cached, {s['translated']} translated")
    if not stats:
        print("translate: off (translate.languages is empty)")


if __name__ == "__main__":
    run(main)
