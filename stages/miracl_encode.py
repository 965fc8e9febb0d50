"""miracl_encode <run>: MIRACL topics and corpora (miracl.languages) into resumable embedding shards,
streamed from the hub or miracl.local_dir; off (an empty record) while miracl.languages is empty. Under
torchrun when miracl.processes > 1 (this script re-runs itself in every worker, each encoding every N-th shard)."""
import json

from hybrid_ir import miracl
from hybrid_ir.io import write_json
from hybrid_ir.params import as_dict
from hybrid_ir.stage import DATA, model_dir, run, run_name


def main(params, argv):
    variant, miracl_params = run_name(argv), params.miracl
    out = DATA / "miracl" / "embeddings" / variant
    if not miracl_params.languages:
        miracl.prepare_output(out, {"off": True}, ())
        print("miracl_encode: off (miracl.languages is empty)")
        return
    from hybrid_ir import distributed
    from hybrid_ir.precision import device_for

    if miracl_params.processes > 1 and not distributed.in_worker():
        raise SystemExit(distributed.launch(miracl_params.processes, __file__, argv, device_for(), "miracl.processes"))
    ctx = distributed.setup()
    try:
        _encode(params, variant, out, ctx)
    finally:
        distributed.teardown(ctx)


def _encode(params, variant, out, ctx):
    from hybrid_ir.base_models import resolve_pooling
    from hybrid_ir.encoder import encode, load_encoder
    from hybrid_ir.precision import resolve as resolve_precision

    miracl_params = params.miracl
    dim = json.loads((model_dir(variant) / "config.json").read_text())["hidden_size"]
    source = miracl.MiraclSource(miracl_params.local_dir, miracl_params.topics_repo, miracl_params.corpus_repo,
                                 miracl_params.topics_revision, miracl_params.corpus_revision)
    provenance = source.provenance()
    bf16 = resolve_precision(params.encode.precision, ctx.device, "encode.precision") == "bf16"
    fingerprint = miracl.encoding_fingerprint(model_dir(variant), provenance, as_dict(params.model), bf16,
                                              miracl_params)
    if ctx.is_main:
        miracl.prepare_output(out, fingerprint, miracl_params.languages)
    ctx.barrier()
    model, tokenizer = load_encoder(model_dir(variant), device=ctx.device)
    pooling = resolve_pooling(params.model)

    def encode_fn(texts, kind, desc):
        prefix = params.model.query_prefix if kind == "query" else params.model.passage_prefix
        return encode(model, tokenizer, texts, prefix=prefix, pooling=pooling, batch_size=miracl_params.batch_size,
                      max_length=miracl_params.max_length, bf16=bf16, desc=desc or "encode",
                      progress=desc is not None)

    for lang in miracl_params.languages:
        summary = miracl.encode_language(encode_fn, source, lang, out / lang, split=miracl_params.split,
                                         shard_size=miracl_params.shard_size, max_docs=miracl_params.max_docs,
                                         with_title=miracl_params.with_title, dim=dim, ctx=ctx)
        if ctx.is_main:
            print(f"miracl_encode {variant} {lang}: {summary['passages']} passages in {summary['shards']} shards")
    if ctx.is_main:
        write_json(out / "source.json", provenance)


if __name__ == "__main__":
    run(main, uses_torch=lambda params: bool(params.miracl.languages))
