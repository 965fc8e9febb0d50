"""miracl_encode <run>: MIRACL topics and corpora (miracl.languages) into resumable embedding shards,
streamed from the hub or miracl.local_dir; off (an empty record) while miracl.languages is empty."""
import json

from hybrid_ir import miracl
from hybrid_ir.io import write_json
from hybrid_ir.params import as_dict
from hybrid_ir.stage import DATA, model_dir, run, run_name


def main(params, argv):
    variant, mp = run_name(argv), params.miracl
    out = DATA / "miracl" / "embeddings" / variant
    if not mp.languages:
        miracl.prepare_output(out, {"off": True}, ())
        print("miracl_encode: off (miracl.languages is empty)")
        return
    from hybrid_ir.base_models import resolve_pooling
    from hybrid_ir.encoder import encode, load_encoder
    from hybrid_ir.precision import device_for
    from hybrid_ir.precision import resolve as resolve_precision

    dim = json.loads((model_dir(variant) / "config.json").read_text())["hidden_size"]
    source = miracl.MiraclSource(mp.local_dir, mp.topics_repo, mp.corpus_repo, mp.topics_revision, mp.corpus_revision)
    provenance = source.provenance()
    device = device_for("auto")
    bf16 = resolve_precision(params.encode.precision, device, "encode.precision") == "bf16"
    fingerprint = miracl.encoding_fingerprint(model_dir(variant), provenance, as_dict(params.model), bf16, mp)
    miracl.prepare_output(out, fingerprint, mp.languages)
    model, tokenizer = load_encoder(model_dir(variant), device=device)
    pooling = resolve_pooling(params.model)

    def encode_fn(texts, kind, desc):
        prefix = params.model.query_prefix if kind == "query" else params.model.passage_prefix
        return encode(model, tokenizer, texts, prefix=prefix, pooling=pooling, batch_size=mp.batch_size,
                      max_length=mp.max_length, bf16=bf16, desc=desc or "encode",
                      progress=desc is not None)

    for lang in mp.languages:
        summary = miracl.encode_language(encode_fn, source, lang, out / lang, split=mp.split, shard_size=mp.shard_size,
                                  max_docs=mp.max_docs, with_title=mp.with_title, dim=dim)
        print(f"miracl_encode {variant} {lang}: {summary['passages']} passages in {summary['shards']} shards")
    write_json(out / "source.json", provenance)


if __name__ == "__main__":
    run(main, uses_torch=lambda params: bool(params.miracl.languages))
