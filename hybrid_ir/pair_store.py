"""The pairs stage's product: each text stored once, the pair table's rows left virtual.

``data/pairs/store/`` holds three kinds of Parquet table:

- ``questions.parquet``: one row per question id, sorted by ``qid``: ``qid``, ``article``, ``source``,
  ``title``;
- ``units.parquet``: one row per (question, language), sorted by (qid, lang): ``question`` (its row in
  questions), ``lang``, ``query``, ``positive``, ``negative`` (rows of ``texts/LANG.parquet``) and the
  language-independent passage keys ``positive_id``, ``negative_id``;
- ``texts/LANG.parquet``: ``text``, each distinct text of that language once; a text's id is its row.

The pair table (:func:`hybrid_ir.pairs.build_pair_table`) is never stored: its row r, sorted by (qid,
query_lang, passage_lang), is question q's combination (x, y), with the query of unit (q, x) and the
positive and negative of unit (q, y) (:class:`hybrid_ir.pair_index.PairIndex` does the arithmetic).
Memory grows with the texts and units, not with the k x k combinations of a question's k languages.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .io import atomic_path
from .pair_index import PairIndex

QUESTION_COLUMNS = ["qid", "article", "source", "title"]
UNIT_COLUMNS = ["question", "lang", "query", "positive", "negative", "positive_id", "negative_id"]
TEXT_FIELDS = ("query", "positive", "negative")
TABLE_COLUMNS = ["qid", "article", "query_lang", "passage_lang", "kind", "query", "positive", "negative",
                 "positive_id", "negative_id", "source", "title"]


class PairStore:
    """Questions, units by ids and per-language texts; the virtual pair table's rows and their texts.

    ``texts[lang]`` is a pyarrow string array (one buffer, no Python objects), read memory-mapped.
    """

    def __init__(self, questions: pd.DataFrame, units: pd.DataFrame, texts: dict):
        self.questions = questions.reset_index(drop=True)
        self.units = units.reset_index(drop=True)
        self.texts = texts
        self._index = None
        self._lang = self.units["lang"].astype(str).to_numpy()
        self._ids = {f: self.units[f].to_numpy() for f in TEXT_FIELDS}

    # -- building ------------------------------------------------------------------------------------------
    @classmethod
    def from_units(cls, units: pd.DataFrame, languages=None) -> "PairStore":
        """From one row per (question id, language) with texts (hybrid_ir.sources.UNIT_COLUMNS), any order;
        only `languages` (None: all) are kept."""
        if languages is not None:
            units = units[units["lang"].isin(set(languages))]
        units = units.sort_values(["qid", "lang"], kind="stable", ignore_index=True)
        if units.duplicated(["qid", "lang"]).any():
            raise ValueError("duplicate (qid, language) units")
        questions = units.drop_duplicates("qid")[QUESTION_COLUMNS].reset_index(drop=True)
        questions["article"] = questions["article"].astype("int64")
        question = np.repeat(np.arange(len(questions)), units.groupby("qid", sort=True).size().to_numpy())
        for column in ("article", "source", "title"):  # one value per question id, as the table assumes
            if (units[column].astype(str).to_numpy() != questions[column].astype(str).to_numpy()[question]).any():
                raise ValueError(f"units of one question id disagree on {column}")
        ids, texts = {}, {}
        for lang, rows in units.groupby("lang", sort=True).indices.items():
            codes, uniques = pd.factorize(pd.concat([units[f].iloc[rows] for f in TEXT_FIELDS], ignore_index=True))
            if len(codes) and codes.min() < 0:
                raise ValueError(f"a {lang} unit has no text (query, positive or negative)")
            for i, field in enumerate(TEXT_FIELDS):
                ids.setdefault(field, np.empty(len(units), dtype=np.int64))[rows] = codes[i * len(rows):(i + 1) * len(rows)]
            texts[lang] = pa.array(uniques.astype(str), type=pa.string())
        frame = pd.DataFrame({"question": question.astype(np.int32), "lang": units["lang"].astype(str),
                              **{f: _int32(ids.get(f, np.zeros(0, np.int64))) for f in TEXT_FIELDS},
                              "positive_id": units["positive_id"].astype(str),
                              "negative_id": units["negative_id"].astype(str)})
        return cls(questions, frame, texts)

    @classmethod
    def from_table(cls, pairs: pd.DataFrame) -> "PairStore":
        """From a materialized pair table (TABLE_COLUMNS, any row order): its monolingual rows are the units,
        and the table must be exactly the k x k combinations they compose."""
        mono = pairs[pairs["query_lang"] == pairs["passage_lang"]].rename(columns={"query_lang": "lang"})
        store = cls.from_units(mono)
        composed = store.table()
        given = pairs.sort_values(["qid", "query_lang", "passage_lang"], kind="stable", ignore_index=True)
        if len(given) != len(composed) or not all(
                (given[c].astype(str).to_numpy() == composed[c].astype(str).to_numpy()).all()
                for c in TABLE_COLUMNS if c in given):
            raise ValueError("pairs must hold each (qid, query_lang, passage_lang) of a question's languages "
                             "once, every row with its query-language query and passage-language passages")
        return store

    # -- files ------------------------------------------------------------------------------------------------
    def write(self, folder: str | Path) -> None:
        """The store as a folder of Parquet tables, written whole or not at all."""
        with atomic_path(folder, is_dir=True) as tmp:
            (tmp / "texts").mkdir(parents=True)
            pq.write_table(pa.Table.from_pandas(self.questions, preserve_index=False), tmp / "questions.parquet")
            pq.write_table(pa.Table.from_pandas(self.units, preserve_index=False), tmp / "units.parquet")
            for lang, texts in sorted(self.texts.items()):
                pq.write_table(pa.table({"text": texts}), tmp / "texts" / f"{lang}.parquet")

    @classmethod
    def read(cls, folder: str | Path) -> "PairStore":
        """Read memory-mapped; the texts stay Arrow arrays."""
        folder = Path(folder)
        if not (folder / "units.parquet").is_file():
            raise FileNotFoundError(f"{folder}: no pair store (units.parquet); run the pairs stage")
        questions = pq.read_table(folder / "questions.parquet", memory_map=True).to_pandas()
        units = pq.read_table(folder / "units.parquet", memory_map=True).to_pandas()
        texts = {p.stem: pq.read_table(p, memory_map=True).column("text").combine_chunks()
                 for p in sorted((folder / "texts").glob("*.parquet"))}
        return cls(questions, units, texts)

    # -- the virtual table -----------------------------------------------------------------------------------
    @property
    def index(self) -> PairIndex:
        """The rows' arithmetic (what the sampler reads): built once."""
        if self._index is None:
            qids = self.questions["qid"].astype(str).to_numpy()
            languages = sorted(self.units["lang"].unique())
            lang = pd.Index(languages).get_indexer(self.units["lang"])
            q = self.units["question"].to_numpy(np.int64)
            mask = np.zeros(len(qids), dtype=np.uint32)
            np.bitwise_or.at(mask, q, np.uint32(1) << lang.astype(np.uint32))
            codes, uniques = pd.factorize(pd.concat([self.units["positive_id"], self.units["negative_id"]],
                                                    ignore_index=True))
            n = len(self.units)
            self._index = PairIndex(qids.astype(object), languages, mask, codes[:n], codes[n:])
            self._index.id_values = pd.Index(uniques)
        return self._index

    @property
    def n_rows(self) -> int:
        return self.index.n_rows

    @property
    def n_questions(self) -> int:
        return len(self.questions)

    @property
    def languages(self) -> list[str]:
        return self.index.languages

    def row_units(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """(query unit, passage unit) of each virtual row."""
        index, rows = self.index, np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= index.n_rows):
            raise IndexError(f"pair rows must be in [0, {index.n_rows})")
        q = np.searchsorted(index.row_offset, rows, side="right") - 1
        k = index.k[q].astype(np.int64)
        within = rows - index.row_offset[q]
        return index.unit_offset[q] + within // k, index.unit_offset[q] + within % k

    def texts_of(self, rows) -> tuple[list[str], list[str], list[str]]:
        """(queries, positives, negatives) of the virtual rows."""
        query_unit, passage_unit = self.row_units(rows)
        return (self._unit_texts(query_unit, "query"), self._unit_texts(passage_unit, "positive"),
                self._unit_texts(passage_unit, "negative"))

    def _unit_texts(self, units: np.ndarray, field: str) -> list[str]:
        lang, ids = self._lang[units], self._ids[field][units]
        out = [""] * len(units)
        for code in np.unique(lang):
            where = np.flatnonzero(lang == code)
            for i, text in zip(where, self.texts[code].take(pa.array(ids[where])).to_pylist()):
                out[i] = text
        return out

    def table(self) -> pd.DataFrame:
        """The materialized pair table (build_pair_table's rows and columns): for small data only."""
        query_unit, passage_unit = self.row_units(np.arange(self.n_rows))
        u, qs = self.units, self.questions
        question = u["question"].to_numpy()[query_unit]
        ql, pl = u["lang"].to_numpy()[query_unit], u["lang"].to_numpy()[passage_unit]
        queries, positives, negatives = self.texts_of(np.arange(self.n_rows))
        return pd.DataFrame({
            "qid": qs["qid"].to_numpy()[question], "article": qs["article"].to_numpy()[question].astype("int64"),
            "query_lang": ql, "passage_lang": pl, "kind": np.where(ql == pl, "mono", "cross"),
            "query": queries, "positive": positives, "negative": negatives,
            "positive_id": u["positive_id"].to_numpy()[passage_unit],
            "negative_id": u["negative_id"].to_numpy()[passage_unit],
            "source": qs["source"].to_numpy()[question], "title": qs["title"].to_numpy()[question],
        })

    def subset(self, keep) -> "PairStore":
        """The store of the questions where boolean `keep` is set (texts shared, not copied)."""
        keep = np.asarray(keep, dtype=bool)
        renumber = np.cumsum(keep) - 1
        units = self.units[keep[self.units["question"].to_numpy()]].copy()
        units["question"] = renumber[units["question"].to_numpy()].astype(np.int32)
        return PairStore(self.questions[keep], units, self.texts)

    def fingerprint(self) -> str:
        """A digest of the rows (question ids and their languages): what a resumed checkpoint must match."""
        digest = hashlib.sha256()
        for values in (self.questions["qid"], self.units["question"], self.units["lang"]):
            digest.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
        return digest.hexdigest()

    def counts(self) -> dict:
        """Row counts for a metrics file: totals, per kind, per source and per ordered language pair."""
        index, langs = self.index, self.index.languages
        k2 = index.k.astype(np.int64) ** 2
        per_source = pd.Series(k2).groupby(self.questions["source"].to_numpy()).sum()
        mono, cross, _, _ = index.counts(np.arange(self.n_questions))
        pair = cross.reshape(len(langs), len(langs)) + np.diag(mono)
        return {
            "rows": int(index.n_rows),
            "question_ids": int(self.n_questions),
            "mono": int(index.k.astype(np.int64).sum()),
            "cross": int((k2 - index.k).sum()),
            "per_source": {str(s): int(n) for s, n in per_source.items()},
            "per_pair": {f"{langs[x]}-{langs[y]}": int(pair[x, y])
                         for x in range(len(langs)) for y in range(len(langs)) if pair[x, y]},
        }


def _int32(codes: np.ndarray) -> np.ndarray:
    return codes.astype(np.int32) if len(codes) == 0 or int(codes.max()) < 2**31 - 1 else codes


def as_store(pairs) -> PairStore:
    """A PairStore as it is; a materialized pair table (DataFrame) through PairStore.from_table."""
    if isinstance(pairs, PairStore):
        return pairs
    if isinstance(pairs, pd.DataFrame):
        return PairStore.from_table(pairs)
    raise TypeError(f"pairs must be a PairStore or a pair-table DataFrame, got {type(pairs).__name__}")
