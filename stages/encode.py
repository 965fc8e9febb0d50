"""encode <run>: questions and candidate sentences of every eval set into FAISS indexes."""
import pandas as pd

from hybrid_ir.base_models import resolve_pooling
from hybrid_ir.encoder import encode, load_encoder
from hybrid_ir.index import CANDIDATES, QUERIES, save_encoded
from hybrid_ir.io import ensure_free_space, write_json
from hybrid_ir.precision import resolve as resolve_precision
from hybrid_ir.stage import DATA, DATASETS, index_dir, model_dir, run, run_name

ID_COLUMNS = {QUERIES: ["qid", "lang"], CANDIDATES: ["cid", "lang", "qids"]}


def main(params, argv):
    variant, model_params = run_name(argv), params.model
    tables = {(d, n): pd.read_parquet(DATA / "eval" / d / f"{n}.parquet") for d in DATASETS for n in ID_COLUMNS}
    model, tokenizer = load_encoder(model_dir(variant))
    precision = resolve_precision(params.encode.precision, "cpu", "encode.precision")
    vector_bytes = 4 * model.config.hidden_size * sum(len(t) for t in tables.values())
    ensure_free_space(DATA / "index" / variant, vector_bytes, f"encode {variant}")
    for dataset in DATASETS:
        for name, prefix in ((QUERIES, model_params.query_prefix), (CANDIDATES, model_params.passage_prefix)):
            table = tables[(dataset, name)]
            with_context = name == CANDIDATES and params.encode.candidate_context
            vectors = encode(
                model, tokenizer, table["text"].tolist(), prefix=prefix, pooling=resolve_pooling(model_params),
                batch_size=params.encode.batch_size, max_length=model_params.max_length, bf16=precision == "bf16",
                desc=f"encode {variant} {dataset} {name}",
                second_segments=table["context"].tolist() if with_context else None,
            )
            save_encoded(index_dir(variant, dataset), name, vectors, table[ID_COLUMNS[name]])
    write_json(DATA / "index" / variant / "encoding.json", {"precision": precision})


if __name__ == "__main__":
    run(main)
