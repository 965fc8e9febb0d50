"""MT stage: English units translated into languages no corpus covers, with a Parquet cache.

The texts of a unit (question, positive, negative) are translated sentence by sentence with an open
many-to-many model through transformers (NLLB-200 by default; M2M-100 works too), in batches sorted
by length, on the GPU when there is one (bf16 there), else on the CPU in fp32. With ``translate.processes``
> 1 the stage runs under torchrun and each rank translates every world-th batch (hybrid_ir.distributed).

Cache: ``data/translate/cache/part-NNNNN.parquet`` files with columns :data:`CACHE_COLUMNS`, keyed by
(sha1 of the source text, target language, model key); the model key is the model id with the
decoding settings, so a change of model or beams translates again. New translations are appended as
new parts (written atomically every ``FLUSH_ROWS`` rows), so an interrupted run keeps its progress and
a re-run translates only texts the cache lacks.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .corpora import CorpusError
from .io import write_json, write_parquet
from .ranks import Context
from .vocab import FLORES, SOURCE_LANGUAGES

CACHE_COLUMNS = ["src_hash", "tgt_lang", "model", "source_text", "translation"]
TEXT_COLUMNS = ("query", "positive", "negative")
FLUSH_ROWS = 20_000


class TranslateError(CorpusError):
    """The MT stage cannot run (model not loadable, language unknown to the model, cache incomplete)."""


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def model_key(tp) -> str:
    """The cache key of a model and its decoding settings (params.translate)."""
    return f"{tp.model}|beams={tp.num_beams}|max_length={tp.max_length}"


def load_cache(cache_dir: Path) -> pd.DataFrame:
    parts = sorted(Path(cache_dir).glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame(columns=CACHE_COLUMNS)
    cache = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return cache.drop_duplicates(["src_hash", "tgt_lang", "model"], keep="first", ignore_index=True)


def _write_manifest(cache_dir: Path) -> None:
    parts = sorted(Path(cache_dir).glob("part-*.parquet"))
    rows = {p.name: len(pd.read_parquet(p, columns=["src_hash"])) for p in parts}
    write_json(Path(cache_dir) / "MANIFEST.json", {"parts": rows, "rows": sum(rows.values())})


def _append_part(cache_dir: Path, frame: pd.DataFrame) -> None:
    n = len(list(Path(cache_dir).glob("part-*.parquet")))
    write_parquet(Path(cache_dir) / f"part-{n:05d}.parquet", frame[CACHE_COLUMNS])


def targets(tp, source: str) -> list[str]:
    """Languages the MT stage adds to `source`: those asked for that the source lacks."""
    if source not in tp.sources:
        return []
    return [lang for lang in tp.languages if lang not in SOURCE_LANGUAGES[source]]


def requests(units: pd.DataFrame, tp) -> dict:
    """{target language: sorted unique English texts} the pair table needs translated."""
    out = {}
    english = units[units["lang"] == "en"]
    for source, frame in english.groupby("source"):
        texts = set(pd.unique(frame[list(TEXT_COLUMNS)].to_numpy().ravel()))
        for lang in targets(tp, source):
            out.setdefault(lang, set()).update(texts)
    return {lang: sorted(texts) for lang, texts in sorted(out.items())}


def language_token(tokenizer, lang: str) -> str:
    """The model's token for `lang`: a FLORES-200 code (NLLB) or ``__xx__`` (M2M-100)."""
    unk = tokenizer.unk_token_id
    for token in (FLORES.get(lang), f"__{lang}__"):
        if token and tokenizer.convert_tokens_to_ids(token) not in (None, unk):
            return token
    raise TranslateError(f"the translation model knows no token for language {lang!r} "
                         f"(tried {FLORES.get(lang)!r} and '__{lang}__')")


class Translator:
    """A seq2seq translation model from English, loaded once; call with (texts, target language)."""

    def __init__(self, tp, device: str | None = None):
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        from .precision import device_for

        self.tp = tp
        self.device = device or device_for()
        dtype = torch.bfloat16 if self.device.startswith("cuda") and tp.bf16 else torch.float32
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tp.model)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(tp.model, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise TranslateError(f"cannot load translation model {tp.model!r} ({exc}); it needs the Hugging Face "
                                 "hub or a local model directory (translate.model)") from exc
        self.model.to(self.device).eval()
        src = language_token(self.tokenizer, "en")
        if hasattr(self.tokenizer, "src_lang"):
            self.tokenizer.src_lang = src

    def __call__(self, texts: list[str], lang: str) -> list[str]:
        """One batch, translated as given (padded to its longest text)."""
        import torch

        forced = self.tokenizer.convert_tokens_to_ids(language_token(self.tokenizer, lang))
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                             max_length=self.tp.max_length).to(self.device)
        with torch.inference_mode():
            gen = self.model.generate(**enc, forced_bos_token_id=forced, num_beams=self.tp.num_beams,
                                      do_sample=False, max_new_tokens=self.tp.max_length)
        return [text.strip() for text in self.tokenizer.batch_decode(gen, skip_special_tokens=True)]


def length_batches(texts: list[str], batch_size: int) -> list[list[int]]:
    """Indices of `texts` in batches of similar length: sorted by characters, then cut every batch_size."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[b:b + batch_size] for b in range(0, len(order), batch_size)]


def _translate_share(translator, chunk: list[str], lang: str, batch_size: int, ctx, progress: bool) -> dict:
    """{index in chunk: translation} for the batches of `chunk` this rank owns (all of them in one process)."""
    rank, world = ctx.rank, ctx.world_size
    owned = [b for k, b in enumerate(length_batches(chunk, batch_size)) if k % world == rank]
    desc = f"translate en->{lang}" + (f" (rank {rank} of {world})" if world > 1 else "")
    out = {}
    for batch in tqdm(owned, desc=desc, unit="batch", mininterval=10, disable=not progress or rank > 0):
        out.update(zip(batch, translator([chunk[i] for i in batch], lang)))
    return out


def _translate_chunk(cache_dir: Path, translator, chunk: list[str], lang: str, tp, ctx, progress: bool) -> None:
    """Translate one chunk into a new cache part: each rank writes its share to pending/, rank 0 merges.

    A share on disk is not translated again, so an interrupted multi-process run resumes by rank.
    """
    key = model_key(tp)
    rank, world = ctx.rank, ctx.world_size
    pending = cache_dir / "pending"
    tag = hashlib.sha1("\n".join([key, lang, *chunk]).encode("utf-8")).hexdigest()[:16]
    share_file = pending / f"{tag}-rank{rank}of{world}.parquet"
    if not share_file.is_file():
        share = _translate_share(translator, chunk, lang, tp.batch_size, ctx, progress)
        write_parquet(share_file, pd.DataFrame({"index": list(share), "translation": list(share.values())}))
    ctx.barrier()
    if rank == 0:
        done = [None] * len(chunk)
        shares = [pending / f"{tag}-rank{r}of{world}.parquet" for r in range(world)]
        for path in shares:
            frame = pd.read_parquet(path)
            for i, text in zip(frame["index"], frame["translation"]):
                done[i] = text
        _append_part(cache_dir, pd.DataFrame({
            "src_hash": [text_hash(t) for t in chunk], "tgt_lang": lang, "model": key,
            "source_text": chunk, "translation": done}))
        for path in shares:
            path.unlink()
    ctx.barrier()  # every rank sees the new part before the next chunk numbers its own


def update_cache(cache_dir: Path, wanted: dict, tp, translator=None, ctx=None, progress: bool = True) -> dict:
    """Translate what the cache lacks; return {lang: {requested, cached, translated}}.

    `translator(texts, lang)` translates one batch; it defaults to a :class:`Translator`, built only when
    something is missing. With `ctx` (hybrid_ir.ranks.Context) of several ranks, every rank calls
    this with the same arguments and translates every world-th batch; the parts are the bytes one
    process writes, as no batch changes.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key, ctx = model_key(tp), ctx or Context()
    cache = load_cache(cache_dir)
    have = set(zip(cache["src_hash"], cache["tgt_lang"], cache["model"]))
    stats = {}
    for lang, texts in wanted.items():
        missing = [t for t in texts if (text_hash(t), lang, key) not in have]
        stats[lang] = {"requested": len(texts), "cached": len(texts) - len(missing), "translated": len(missing)}
        if missing and translator is None:
            translator = Translator(tp, device=ctx.device if ctx.distributed else None)
        for start in range(0, len(missing), FLUSH_ROWS):  # a part per chunk: progress survives a crash
            _translate_chunk(cache_dir, translator, missing[start:start + FLUSH_ROWS], lang, tp, ctx, progress)
    if ctx.is_main:
        shutil.rmtree(cache_dir / "pending", ignore_errors=True)  # shares of a run with another split
        _write_manifest(cache_dir)
    return stats


def translated_units(units: pd.DataFrame, cache_dir: Path, tp, skips) -> pd.DataFrame:
    """`units` plus, for every target language, the English units with their cached translations.

    A text missing from the cache stops the stage (run the translate stage); an empty translation
    is a counted skip of that unit.
    """
    if not tp.languages:
        return units
    key = model_key(tp)
    cache = load_cache(cache_dir)
    cache = cache[cache["model"] == key]
    frames = [units]
    english = units[units["lang"] == "en"]
    for source, frame in english.groupby("source"):
        for lang in targets(tp, source):
            lookup = dict(zip(cache.loc[cache["tgt_lang"] == lang, "src_hash"],
                              cache.loc[cache["tgt_lang"] == lang, "translation"]))
            out = frame.copy()
            out["lang"] = lang
            for col in TEXT_COLUMNS:
                out[col] = [lookup.get(text_hash(t)) for t in frame[col]]
            lacking = out[list(TEXT_COLUMNS)].isna().any(axis=1)
            if lacking.any():
                raise TranslateError(f"{int(lacking.sum())} {source} units lack a cached translation to {lang} with "
                                     f"{key} in {cache_dir}: run the translate stage (dvc repro translate)")
            empty = (out[list(TEXT_COLUMNS)] == "").any(axis=1)
            for qid in out.loc[empty, "qid"]:
                skips.skip(source, lang, "empty_translation", f"{key} question {qid}")
            skips.seen(source, lang, len(out))
            frames.append(out[~empty])
    return pd.concat(frames, ignore_index=True)
