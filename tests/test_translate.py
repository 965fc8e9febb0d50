"""The MT stage on the CPU with a tiny random NLLB-style model built in the test (no hub)."""
from dataclasses import replace

import pandas as pd
import pytest

from hybrid_ir.params import TranslateParams
from hybrid_ir.sources import Skips, squad_mlqa_units
from hybrid_ir.translate import (CACHE_COLUMNS, TranslateError, Translator, language_token, load_cache, model_key,
                                 requests, text_hash, translated_units, update_cache)
from tests import source_fixtures as fx


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return fx.build_tiny_translation_model(tmp_path_factory.mktemp("mt") / "tiny-nllb")


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    fx.write_squad_parquet(root / "squad")
    fx.write_mlqa(root / "mlqa", ["de"])
    return squad_mlqa_units(str(root / "squad"), str(root / "mlqa"), ["en", "de"], 1, 0, Skips())


def _params(model, **kw):
    return replace(TranslateParams(languages=("ru", "th"), sources=("squad_mlqa",), model=str(model),
                                   batch_size=4, max_length=16), **kw)


def test_requests_cover_english_texts_of_languages_the_source_lacks(units):
    tp = _params("m", languages=("de", "ru"))
    wanted = requests(units, tp)
    english = units[units["lang"] == "en"]
    texts = set(english["query"]) | set(english["positive"]) | set(english["negative"])
    assert list(wanted) == ["ru"] and set(wanted["ru"]) == texts  # de comes from MLQA, not from MT
    assert requests(units, _params("m", sources=("mmarco",))) == {}


def test_cache_is_filled_once_and_rerun_translates_nothing(tmp_path, units, tiny_model):
    tp = _params(tiny_model)
    wanted = requests(units, tp)
    cache_dir = tmp_path / "cache"
    first = update_cache(cache_dir, wanted, tp)
    n = len(wanted["ru"])
    assert first == {lang: {"requested": n, "cached": 0, "translated": n} for lang in ("ru", "th")}
    cache = load_cache(cache_dir)
    assert list(cache.columns) == CACHE_COLUMNS and len(cache) == 2 * n
    assert set(cache["model"]) == {model_key(tp)} and cache["translation"].map(type).eq(str).all()
    assert set(cache["src_hash"]) == {text_hash(t) for t in wanted["ru"]}
    parts = sorted(p.name for p in cache_dir.iterdir())

    def no_model(texts, lang):
        raise AssertionError("nothing should be translated again")

    again = update_cache(cache_dir, wanted, tp, translator=no_model)
    assert again == {lang: {"requested": n, "cached": n, "translated": 0} for lang in ("ru", "th")}
    assert sorted(p.name for p in cache_dir.iterdir()) == parts
    # another decoding setting is another cache key: translated anew, old rows kept
    beams = _params(tiny_model, num_beams=2)
    third = update_cache(cache_dir, {"ru": wanted["ru"][:3]}, beams)
    assert third["ru"]["translated"] == 3 and len(load_cache(cache_dir)) == 2 * n + 3


def test_translated_units_add_the_target_languages(tmp_path, units):
    tp = _params("stub-model", languages=("ru",))
    cache_dir = tmp_path / "cache"
    update_cache(cache_dir, requests(units, tp), tp, translator=lambda texts, lang: [f"<{lang}> {t}" for t in texts])
    skips = Skips()
    out = translated_units(units, cache_dir, tp, skips)
    ru = out[out["lang"] == "ru"].set_index("qid")
    en = units[units["lang"] == "en"].set_index("qid")
    assert len(ru) == len(en)
    for col in ("query", "positive", "negative"):
        assert (ru[col] == "<ru> " + en[col]).all()
    assert (ru["positive_id"] == en["positive_id"]).all() and (ru["source"] == "squad_mlqa").all()
    assert skips.read[("squad_mlqa", "ru")] == len(en)


def test_missing_translation_stops_and_empty_one_is_a_counted_skip(tmp_path, units):
    tp = _params("stub-model", languages=("ru",))
    with pytest.raises(TranslateError, match="lack a cached translation to ru"):
        translated_units(units, tmp_path / "empty", tp, Skips())
    first_query = units[units["lang"] == "en"]["query"].iloc[0]
    update_cache(tmp_path / "c", requests(units, tp), tp,
                 translator=lambda texts, lang: ["" if t == first_query else t for t in texts])
    skips = Skips()
    out = translated_units(units, tmp_path / "c", tp, skips)
    assert skips.totals() == {"squad_mlqa": 1}
    assert (out["lang"] == "ru").sum() == (units["lang"] == "en").sum() - 1


def test_language_tokens_for_nllb_and_m2m100(tiny_model):
    tok = Translator(_params(tiny_model)).tokenizer
    assert language_token(tok, "ru") == "rus_Cyrl" and language_token(tok, "en") == "eng_Latn"

    class M2MStyle:  # M2M-100 names languages "__xx__"
        unk_token_id = 3

        def convert_tokens_to_ids(self, token):
            return {"__ru__": 128045}.get(token, 3)

    assert language_token(M2MStyle(), "ru") == "__ru__"
    with pytest.raises(TranslateError, match="no token for language 'th'"):
        language_token(M2MStyle(), "th")


def test_unloadable_model_is_one_clear_error(tmp_path):
    with pytest.raises(TranslateError, match="cannot load translation model"):
        Translator(_params(tmp_path / "no-such-model"))


def test_translator_output_is_deterministic_and_one_per_text(tiny_model):
    translator = Translator(_params(tiny_model), device="cpu")
    texts = ["the cat", "a b c d e f g", "what is it"]
    out = translator(texts, "th")
    assert len(out) == 3 and out == translator(texts, "th")
    assert pd.Series(out).map(lambda s: isinstance(s, str)).all()
