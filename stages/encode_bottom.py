"""encode_bottom: every eval text set tokenized once and run once through the frozen bottom that the base
model and every trained run share (train.freeze_layers), for the encode stages to start from."""
from hybrid_ir.encoder import load_encoder
from hybrid_ir.io import ensure_free_space
from hybrid_ir.precision import resolve as resolve_precision
from hybrid_ir.shared_bottom import compute_bottom, shared_layers, text_sets
from hybrid_ir.stage import BOTTOM, eval_tables, model_dir, run


def main(params, argv):
    tables = eval_tables()
    model, tokenizer = load_encoder(model_dir("base"))
    precision = resolve_precision(params.encode.precision, "cpu", "encode.precision")
    layers = shared_layers(params.train)
    # at most ~2 fp32 values per character (tokens are shorter), an upper bound for the free-space check
    chars = sum(int(t["text"].str.len().sum()) for t in tables.values())
    ensure_free_space(BOTTOM, 8 * model.config.hidden_size * chars if layers else 0, "encode_bottom")
    for text_set in text_sets(tables, params.model, params.encode, precision):
        tokens = compute_bottom(model, tokenizer, text_set, BOTTOM / text_set.dataset / f"{text_set.name}.safetensors",
                                layers=layers, desc=f"bottom {text_set.dataset} {text_set.name}")
        print(f"{text_set.dataset} {text_set.name}: {len(text_set.texts)} texts, {tokens} tokens, {layers} layers")


if __name__ == "__main__":
    run(main)
