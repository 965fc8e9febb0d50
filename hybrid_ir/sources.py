"""Training sources as per-language *units*: one row per (question id, language).

A unit holds a question, its positive passage (the answer-bearing sentence, or mMARCO's relevant
passage) and a hard negative, with language-independent keys. :mod:`hybrid_ir.pairs` crosses the
units of a question id into the pair table. Sources:

- ``xquad``: XQuAD articles with XQuAD-R's sentence breaks (Romanian, which XQuAD-R lacks, is
  split with :mod:`hybrid_ir.sentences`); bad records raise :class:`CorpusError`.
- ``squad_mlqa``: SQuAD v1.1 train (``rajpurkar/squad``) joined by SQuAD id with its machine
  translations in MLQA translate-train (``facebook/mlqa``, ``mlqa-translate-train.LANG``, train split
  only: its validation split translates SQuAD dev, which XQuAD is made of).
- ``mmarco``: mMARCO (``unicamp-dl/mmarco``, Google translations): training triples
  ``data/triples.train.ids.small.tsv``, queries ``data/google/queries/train/NAME_queries.train.tsv``,
  passages ``data/google/collections/NAME_collection.tsv``.

Each public source reads a local directory in the upstream layout when one is given, else the
Hugging Face hub. A bad record in a public source is skipped, counted and reported with an example
(:class:`Skips`); a source whose skipped share passes ``pairs.max_skip_fraction`` stops the stage.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .corpora import CorpusError, answer_sentence, iter_paragraphs, qa_answer_start, read_squad
from .evalsets import paragraph_key
from .sentences import split_spans
from .vocab import SOURCE_LANGUAGES

UNIT_COLUMNS = [
    "source", "qid", "title", "article", "lang",
    "query", "positive", "negative", "positive_id", "negative_id",
]
SQUAD_HUB = "rajpurkar/squad"
MLQA_HUB = "facebook/mlqa"
MMARCO_HUB = "unicamp-dl/mmarco"
MLQA_TRAIN_FILE = "{lang}_squad-translate-train-train-v1.1.json"
MMARCO_NAMES = {
    "ar": "arabic", "de": "german", "en": "english", "es": "spanish", "fr": "french", "hi": "hindi",
    "id": "indonesian", "it": "italian", "ja": "japanese", "nl": "dutch", "pt": "portuguese",
    "ru": "russian", "vi": "vietnamese", "zh": "chinese",
}
MMARCO_TRIPLES = "data/triples.train.ids.small.tsv"
MMARCO_QUERIES = "data/google/queries/train/{name}_queries.train.tsv"
MMARCO_COLLECTION = "data/google/collections/{name}_collection.tsv"


class Skips:
    """Counted, reported skips of bad records in the public sources: never a silent drop."""

    EXAMPLES = 3

    def __init__(self):
        self.read = Counter()  # (source, lang) -> records read
        self.skipped = Counter()  # (source, lang, reason) -> records skipped
        self.examples = defaultdict(list)  # (source, lang, reason) -> "where" strings

    def seen(self, source: str, lang: str, n: int = 1) -> None:
        self.read[(source, lang)] += n

    def skip(self, source: str, lang: str, reason: str, where: str) -> None:
        key = (source, lang, reason)
        self.skipped[key] += 1
        if len(self.examples[key]) < self.EXAMPLES:
            self.examples[key].append(where)

    def as_dict(self) -> dict:
        out = {}
        for (source, lang), n in sorted(self.read.items()):
            out.setdefault(source, {})[lang] = {"read": n, "skipped": {}, "examples": {}}
        for (source, lang, reason), n in sorted(self.skipped.items()):
            entry = out.setdefault(source, {}).setdefault(lang, {"read": 0, "skipped": {}, "examples": {}})
            entry["skipped"][reason] = n
            entry["examples"][reason] = self.examples[(source, lang, reason)]
        return out

    def totals(self) -> dict:
        """{source: records skipped} for the metrics file."""
        out = Counter()
        for (source, _, _), n in self.skipped.items():
            out[source] += n
        return dict(sorted(out.items()))

    def check(self, max_fraction: float) -> None:
        """Stop when a (source, language) lost more than max_fraction of its records."""
        for key, n in sorted(self.read.items()):
            reasons = {r: v for (s, lg, r), v in self.skipped.items() if (s, lg) == key}
            lost = sum(reasons.values())
            if n and lost / n > max_fraction:
                source, lang = key
                examples = [e for (s, lg, _), ex in self.examples.items() if (s, lg) == key for e in ex]
                raise CorpusError(
                    f"{source}/{lang}: {lost} of {n} records skipped ({lost / n:.1%} > pairs.max_skip_fraction "
                    f"{max_fraction:.1%}): {reasons}; e.g. {examples[:3]}"
                )


def _pick_negative(rng, sents, idx, key, others):
    """Another sentence of the paragraph, else one of another paragraph of the article, else None."""
    rest = [i for i in range(len(sents)) if i != idx]
    if rest:
        return sents[int(rng.choice(rest))], key
    pool = [(k, s) for k, ss in others if k != key for s in ss]
    if not pool:
        return None
    k, text = pool[int(rng.integers(len(pool)))]
    return text, k


# -- XQuAD ---------------------------------------------------------------------------------------
def _xquad_paragraphs(xquad_dir: Path, xquad_r_dir: Path, lang: str):
    """(article, paragraph, paragraph dict, sentence spans, title, path): XQuAD-R's breaks, or the splitter for ro."""
    q_path = Path(xquad_dir) / f"xquad.{lang}.json"
    articles = read_squad(q_path)
    plain = list(iter_paragraphs(articles, q_path))
    titles = [a.get("title", "") for a in articles]
    if lang == "ro":  # no XQuAD-R file: split with the documented rule, never inside an answer
        for a, p, para in plain:
            protect = []
            for qa in para["qas"]:
                start = qa_answer_start(qa, f"{q_path} question {qa.get('id', '?')}")
                protect.append((start, start + len(qa["answers"][0].get("text", ""))))
            yield a, p, para, split_spans(para["context"], lang, protect), titles[a], q_path
        return
    r_path = Path(xquad_r_dir) / f"{lang}.json"
    with_breaks = list(iter_paragraphs(read_squad(r_path), r_path))
    if len(plain) != len(with_breaks):
        raise CorpusError(f"{q_path} and {r_path}: {len(plain)} vs {len(with_breaks)} paragraphs")
    for (a, p, para), (_, _, rpara) in zip(plain, with_breaks):
        if para["context"] != rpara["context"]:
            raise CorpusError(f"{q_path} and {r_path}: article {a} paragraph {p} contexts differ")
        yield a, p, para, rpara["sentence_breaks"], titles[a], q_path


def xquad_units(xquad_dir: Path, xquad_r_dir: Path, languages, articles, seed: int) -> pd.DataFrame:
    """Units of the given XQuAD articles; a malformed record raises CorpusError naming file and question."""
    languages, articles = sorted(languages), set(articles)
    per_lang, article_paras = {}, {}
    for lang in languages:
        rows = {}
        for a, p, para, breaks, title, path in _xquad_paragraphs(xquad_dir, xquad_r_dir, lang):
            if a not in articles:
                continue
            sents = [para["context"][s:e] for s, e in breaks]
            article_paras.setdefault((lang, a), []).append((paragraph_key(a, p), sents))
            for qa in para["qas"]:
                where = f"{path} question {qa.get('id', '?')}"
                idx = answer_sentence(breaks, qa_answer_start(qa, where), where)
                rows[qa["id"]] = (qa["question"], a, paragraph_key(a, p), idx, sents, title)
        per_lang[lang] = rows
    rng = np.random.default_rng(seed)
    out = []
    for lang in languages:
        for qid in sorted(per_lang[lang]):
            query, a, key, idx, sents, title = per_lang[lang][qid]
            neg = _pick_negative(rng, sents, idx, key, article_paras[(lang, a)])
            if neg is None:
                raise CorpusError(f"xquad/{lang}: question {qid}: article {a} has a single sentence, no negative")
            out.append(("xquad", qid, title, a, lang, query, sents[idx], neg[0], key, neg[1]))
    return pd.DataFrame(out, columns=UNIT_COLUMNS)


# -- SQuAD + MLQA translate-train --------------------------------------------------------------
def _answer(record: dict):
    """(answer_start, answer_text) of an HF-style or SQuAD-style answers field."""
    answers = record["answers"]
    if isinstance(answers, dict):  # HF columns: {"text": [...], "answer_start": [...]}
        return int(answers["answer_start"][0]), str(answers["text"][0])
    return int(answers[0]["answer_start"]), str(answers[0]["text"])


def flatten_squad_json(path: Path):
    """Rows (id, title, context, question, answers) of a SQuAD-format JSON file (as the HF loaders give)."""
    for article in read_squad(path):
        title = article.get("title", "") if isinstance(article, dict) else ""
        for para in (article.get("paragraphs", []) if isinstance(article, dict) else []):
            for qa in para.get("qas", []) if isinstance(para, dict) else []:
                yield {"id": qa.get("id"), "title": title, "context": para.get("context"),
                       "question": qa.get("question"), "answers": qa.get("answers")}


def _hub_dataset(repo: str, config: str | None, split: str):
    """A split from the Hugging Face hub; script-only repos load from the hub's Parquet export."""
    import datasets

    try:
        return datasets.load_dataset(repo, config, split=split)
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one line naming the dataset
        if "script" in str(exc).lower():
            try:
                return datasets.load_dataset(repo, config, split=split, revision="refs/convert/parquet")
            except Exception as exc2:  # noqa: BLE001
                exc = exc2
        raise CorpusError(
            f"cannot load {repo} {config or ''} [{split}] from the Hugging Face hub ({type(exc).__name__}: {exc}); "
            "give a local copy in the upstream layout instead (pairs.squad_dir / pairs.mlqa_dir)"
        ) from exc


def squad_rows(squad_dir: str):
    """SQuAD v1.1 train rows: a local `train-v1.1.json` or HF Parquet files, else the hub."""
    if not squad_dir:
        return "hub:" + SQUAD_HUB, _hub_dataset(SQUAD_HUB, None, "train")
    root = Path(squad_dir)
    if (root / "train-v1.1.json").is_file():
        path = root / "train-v1.1.json"
        return str(path), flatten_squad_json(path)
    files = sorted(root.glob("**/train-*.parquet"))
    if not files:
        raise CorpusError(f"{root}: neither train-v1.1.json nor train-*.parquet (pairs.squad_dir)")
    return str(root), (row for f in files for row in pd.read_parquet(f).to_dict("records"))


def mlqa_rows(mlqa_dir: str, lang: str):
    """MLQA translate-train rows of one language (train split): a local SQuAD-format file, else the hub."""
    if not mlqa_dir:
        config = f"mlqa-translate-train.{lang}"
        return f"hub:{MLQA_HUB}/{config}", _hub_dataset(MLQA_HUB, config, "train")
    name = MLQA_TRAIN_FILE.format(lang=lang)
    for path in (Path(mlqa_dir) / name, Path(mlqa_dir) / "mlqa-translate-train" / name):
        if path.is_file():
            return str(path), flatten_squad_json(path)
    raise CorpusError(f"{Path(mlqa_dir) / name}: MLQA translate-train file not found (pairs.mlqa_dir)")


def _clean_rows(rows, origin: str, source: str, lang: str, skips: Skips):
    """{qid: (question, context, answer_start, answer_end, title)}; bad records are counted skips."""
    out = {}
    for i, row in enumerate(rows):
        skips.seen(source, lang)
        qid = row.get("id") if isinstance(row, dict) else None
        where = f"{origin} record {i} (id {qid})"
        try:
            question, context = row["question"], row["context"]
            start, text = _answer(row)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            skips.skip(source, lang, "missing_field", f"{where}: {type(exc).__name__} {exc}")
            continue
        if not qid or not isinstance(question, str) or not isinstance(context, str) or not question.strip():
            skips.skip(source, lang, "missing_field", where)
            continue
        if qid in out:
            skips.skip(source, lang, "duplicate_id", where)
            continue
        if not 0 <= start < len(context):
            skips.skip(source, lang, "answer_outside_context", f"{where}: answer_start {start}")
            continue
        out[qid] = (question, context, start, start + len(text), row.get("title") or "")
    return out


def _units_of_language(rows, lang, meta, rng, source, skips, origin):
    """Split each context once (answers protected); one unit per question id, in sorted order."""
    by_context = defaultdict(list)  # (article, paragraph key, context) -> answer spans
    for qid, (_, context, start, end, _) in rows.items():
        by_context[(meta[qid][1], meta[qid][2], context)].append((start, end))
    spans = {key: split_spans(key[2], lang, protect) for key, protect in by_context.items()}
    sents = {key: [key[2][s:e] for s, e in sp] for key, sp in spans.items()}
    article_paras = defaultdict(list)  # article -> [(paragraph key, sentences)]
    for (article, pkey, _), ss in sents.items():
        article_paras[article].append((pkey, ss))
    out = []
    for qid in sorted(rows):
        question, context, start, _, _ = rows[qid]
        title, article, pkey = meta[qid]
        key = (article, pkey, context)
        hits = [i for i, (s, e) in enumerate(spans[key]) if s <= start < e]
        if len(hits) != 1:
            skips.skip(source, lang, "answer_outside_sentences", f"{origin} id {qid}: answer_start {start}")
            continue
        neg = _pick_negative(rng, sents[key], hits[0], pkey, article_paras[article])
        if neg is None:
            skips.skip(source, lang, "no_negative", f"{origin} id {qid}: a one-sentence article")
            continue
        out.append((source, qid, title, article, lang, question, sents[key][hits[0]], neg[0], pkey, neg[1]))
    return out


def squad_mlqa_units(squad_dir: str, mlqa_dir: str, languages, seed: int, max_questions: int,
                     skips: Skips) -> pd.DataFrame:
    """SQuAD train (en) and its MLQA translate-train translations, aligned by SQuAD id.

    Paragraph keys (``squad:ARTICLE:PARAGRAPH``) come from the English paragraph, so a question's
    passages share one key in every language. `max_questions` > 0 keeps a seeded sample of ids.
    """
    source = "squad_mlqa"
    origin, rows = squad_rows(squad_dir)
    english = _clean_rows(tqdm(rows, desc="squad train", mininterval=5), origin, source, "en", skips)
    titles, paras, per_article, meta = {}, {}, Counter(), {}
    for qid, (_, context, _, _, title) in english.items():  # SQuAD order: articles, then paragraphs
        article = titles.setdefault(title, len(titles))
        if (article, context) not in paras:
            paras[(article, context)] = per_article[article]
            per_article[article] += 1
        meta[qid] = (title, article, f"squad:{article}:{paras[(article, context)]}")
    keep = sorted(meta)
    if 0 < max_questions < len(keep):
        keep = sorted(np.random.default_rng(seed).choice(keep, size=max_questions, replace=False).tolist())
    keep = set(keep)
    rng = np.random.default_rng(seed)
    units = []
    for lang in sorted(set(languages) & set(SOURCE_LANGUAGES[source])):
        if lang == "en":
            lang_rows, where = {q: v for q, v in english.items() if q in keep}, origin
        else:
            where, raw = mlqa_rows(mlqa_dir, lang)
            lang_rows = _clean_rows(tqdm(raw, desc=f"mlqa {lang}", mininterval=5), where, source, lang, skips)
            unknown = [q for q in lang_rows if q not in meta]
            if lang_rows and len(unknown) == len(lang_rows):
                raise CorpusError(f"{where}: no question id matches a SQuAD v1.1 train id (e.g. {unknown[0]})")
            for q in unknown:
                skips.skip(source, lang, "id_not_in_squad_train", f"{where} id {q}")
            lang_rows = {q: v for q, v in lang_rows.items() if q in keep}
        units += _units_of_language(lang_rows, lang, meta, rng, source, skips, where)
    return pd.DataFrame(units, columns=UNIT_COLUMNS)


# -- mMARCO --------------------------------------------------------------------------------------
def _mmarco_file(mmarco_dir: str, relpath: str) -> Path:
    if mmarco_dir:
        path = Path(mmarco_dir) / relpath
        if not path.is_file():
            raise CorpusError(f"{path}: mMARCO file not found (pairs.mmarco_dir, laid out as {MMARCO_HUB})")
        return path
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(MMARCO_HUB, relpath, repo_type="dataset"))
    except Exception as exc:  # noqa: BLE001
        raise CorpusError(f"cannot fetch {MMARCO_HUB}/{relpath} from the Hugging Face hub ({exc}); "
                          "give a local copy with pairs.mmarco_dir") from exc


def _read_tsv(path: Path, ncols: int, keep, source: str, skips: Skips):
    """Rows of a tab-separated file whose first field is in `keep` (all when None).

    Lines are counted under the file's name; a line without `ncols` fields is a counted skip.
    """
    out, lineno = {}, 0
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(tqdm(fh, desc=path.name, mininterval=10, unit=" lines"), 1):
                skips.seen(source, path.name)
                fields = line.rstrip("\n").split("\t")
                if len(fields) != ncols or not fields[0]:
                    skips.skip(source, path.name, "malformed_line", f"{path}:{lineno}")
                    continue
                if keep is None or fields[0] in keep:
                    out.setdefault(fields[0], fields[1:])
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 after line {lineno} ({exc})") from exc
    return out


def mmarco_units(mmarco_dir: str, languages, max_queries: int, seed: int, skips: Skips) -> pd.DataFrame:
    """A seeded sample of `max_queries` mMARCO training queries (0 = all), one triple each."""
    source = "mmarco"
    triples_path = _mmarco_file(mmarco_dir, MMARCO_TRIPLES)
    triples = _read_tsv(triples_path, 3, None, source, skips)  # qid -> [pos, neg], its first triple
    qids = sorted(triples, key=lambda q: (len(q), q))
    if 0 < max_queries < len(qids):
        qids = sorted(np.random.default_rng(seed).choice(qids, size=max_queries, replace=False).tolist(),
                      key=lambda q: (len(q), q))
    pids = {p for q in qids for p in triples[q]}
    units = []
    for lang in sorted(set(languages) & set(SOURCE_LANGUAGES[source])):
        name = MMARCO_NAMES[lang]
        queries = _read_tsv(_mmarco_file(mmarco_dir, MMARCO_QUERIES.format(name=name)), 2, set(qids),
                            source, skips)
        passages = _read_tsv(_mmarco_file(mmarco_dir, MMARCO_COLLECTION.format(name=name)), 2, pids,
                             source, skips)
        for q in qids:
            skips.seen(source, lang)
            pos, neg = triples[q]
            if q not in queries or pos not in passages or neg not in passages:
                skips.skip(source, lang, "missing_text", f"{name}: query {q} / passages {pos}, {neg}")
                continue
            units.append((source, f"mmarco:{q}", "", -1, lang, queries[q][0], passages[pos][0],
                          passages[neg][0], f"mmarco:{pos}", f"mmarco:{neg}"))
    return pd.DataFrame(units, columns=UNIT_COLUMNS)
