"""Worker of tests/test_sharded_work.py: the MT cache or MIRACL shards written by the ranks of a torchrun.

Usage: torchrun --nproc-per-node=N tests/shard_worker.py translate UNITS.parquet MODEL CACHE FLUSH_ROWS
       torchrun --nproc-per-node=N tests/shard_worker.py miracl LAYOUT LANG_DIR SHARD_SIZE CALLS.json
"""
import json
import sys
from pathlib import Path

import pandas as pd

from hybrid_ir import distributed, miracl, translate


def main(mode, *args):
    ctx = distributed.setup("cpu")
    try:
        if mode == "translate":
            units, model, cache, flush = args
            translate.FLUSH_ROWS = int(flush)
            from tests.test_translate import _params

            tp = _params(model)
            stats = translate.update_cache(Path(cache), translate.requests(pd.read_parquet(units), tp), tp, ctx=ctx,
                                           progress=False)
            Path(cache, f"stats-{ctx.rank}.json").write_text(json.dumps(stats))
        else:
            layout, lang_dir, shard_size, calls_file = args
            from tests.test_miracl import fake_encoder

            calls = []
            miracl.encode_language(fake_encoder(calls=calls), miracl.MiraclSource(layout), "sw", Path(lang_dir),
                                   split="dev", shard_size=int(shard_size), max_docs=0, with_title=True, dim=8, ctx=ctx)
            Path(f"{calls_file}.{ctx.rank}").write_text(json.dumps(calls))
    finally:
        distributed.teardown(ctx)


if __name__ == "__main__":
    main(*sys.argv[1:])
