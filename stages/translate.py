"""translate: machine-translate English training units into translate.languages (off when empty), cached;
under torchrun when translate.processes > 1 (this script re-runs itself in every worker)."""
from hybrid_ir import distributed
from hybrid_ir.evalsets import article_split
from hybrid_ir.pairs import prepare_units
from hybrid_ir.precision import device_for
from hybrid_ir.sources import Skips
from hybrid_ir.stage import DATA, run
from hybrid_ir.translate import requests, update_cache


def main(params, argv):
    tp = params.translate
    if tp.languages and tp.processes > 1 and not distributed.in_worker():
        raise SystemExit(distributed.launch(tp.processes, __file__, argv, device_for(), "translate.processes"))
    wanted = {}
    if tp.languages:
        train_idx, _ = article_split(params.split.train_articles, params.split.eval_articles, params.split.seed)
        units, _, _ = prepare_units(params, DATA / "corpora", train_idx, Skips())
        wanted = requests(units, tp)
    ctx = distributed.setup() if distributed.in_worker() else None
    try:
        stats = update_cache(DATA / "translate" / "cache", wanted, tp, ctx=ctx)
    finally:
        if ctx is not None:
            distributed.teardown(ctx)
    if ctx is not None and not ctx.is_main:
        return
    for lang, s in stats.items():
        print(f"translate en->{lang}: {s['requested']} texts, {s['cached']} cached, {s['translated']} translated")
    if not stats:
        print("translate: off (translate.languages is empty)")


if __name__ == "__main__":
    run(main)
