"""encode <run>: questions and candidate sentences of every eval set into FAISS indexes, from the shared
bottom (data/bottom) where the run's model has it, else from the text."""
from hybrid_ir.base_models import resolve_pooling
from hybrid_ir.encoder import load_encoder
from hybrid_ir.index import CANDIDATES, QUERIES, save_encoded
from hybrid_ir.io import ensure_free_space, write_json
from hybrid_ir.precision import resolve as resolve_precision
from hybrid_ir.shared_bottom import encode_sets, text_sets
from hybrid_ir.stage import BOTTOM, DATA, eval_tables, index_dir, model_dir, run, run_name

ID_COLUMNS = {QUERIES: ["qid", "lang"], CANDIDATES: ["cid", "lang", "qids"]}


def main(params, argv):
    variant = run_name(argv)
    tables = eval_tables()
    model, tokenizer = load_encoder(model_dir(variant))
    precision = resolve_precision(params.encode.precision, "cpu", "encode.precision")
    vector_bytes = 4 * model.config.hidden_size * sum(len(t) for t in tables.values())
    ensure_free_space(DATA / "index" / variant, vector_bytes, f"encode {variant}")
    shared = {}
    sets = text_sets(tables, params.model, params.encode, precision)
    for text_set, vectors, served in encode_sets(model, tokenizer, sets, BOTTOM, pooling=resolve_pooling(params.model),
                                                 desc=f"encode {variant}"):
        dataset, name = text_set.dataset, text_set.name
        shared[f"{dataset}/{name}"] = served
        save_encoded(index_dir(variant, dataset), name, vectors, tables[(dataset, name)][ID_COLUMNS[name]])
    write_json(DATA / "index" / variant / "encoding.json", {"precision": precision, "shared_bottom": shared})


if __name__ == "__main__":
    run(main)
