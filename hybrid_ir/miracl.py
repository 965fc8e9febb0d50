"""MIRACL (monolingual retrieval in 18 languages): topics, qrels and corpus from the Hugging Face hub
or a local copy in the hub's layout, read as streams; the corpus encoded into resumable embedding
shards; nDCG@10 and Recall@100 with pytrec_eval (trec_eval's definitions).

Layout, identical on the hub and in a local copy (`miracl.local_dir`):
  miracl-v1.0-{lang}/topics/topics.miracl-v1.0-{lang}-{split}.tsv    qid<TAB>query      (miracl/miracl)
  miracl-v1.0-{lang}/qrels/qrels.miracl-v1.0-{lang}-{split}.tsv      qid Q0 docid rel   (miracl/miracl)
  miracl-corpus-v1.0-{lang}/docs-{i}.jsonl.gz  {"docid", "title", "text"} per line  (miracl/miracl-corpus)

Embedding shards of one language (data/miracl/embeddings/<variant>/<lang>/):
  shard-NNNNN.npy           float32 [n, dim], L2-normalised, corpus order
  shard-NNNNN.docids.txt    the n docids, one per line
  shard-NNNNN.json          written last: n, and where the next shard starts (file, line) to resume
  queries.npy, queries.parquet (qid, query), qrels.txt (a copy); done.json once the corpus is exhausted
"""
from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .errors import MiraclError
from .io import atomic_path, ensure_free_space, sha256_file, write_json, write_parquet, write_text
from .ranks import Context
from .trec import parse_qrels, strictly_decreasing, write_qrels
from .vocab import MIRACL_CORPUS_REPO, MIRACL_CORPUS_SIZES, MIRACL_LANGUAGES, MIRACL_TOPICS_REPO

TOPICS_REPO, CORPUS_REPO, CORPUS_SIZES, LANGUAGES = (
    MIRACL_TOPICS_REPO, MIRACL_CORPUS_REPO, MIRACL_CORPUS_SIZES, MIRACL_LANGUAGES)
MEASURES = {"ndcg_cut_10": "ndcg_10", "recall_100": "recall_100"}  # pytrec_eval key -> ours


def topics_path(lang: str, split: str) -> str:
    return f"miracl-v1.0-{lang}/topics/topics.miracl-v1.0-{lang}-{split}.tsv"


def qrels_path(lang: str, split: str) -> str:
    return f"miracl-v1.0-{lang}/qrels/qrels.miracl-v1.0-{lang}-{split}.tsv"


def corpus_dir(lang: str) -> str:
    return f"miracl-corpus-v1.0-{lang}"


def _shard_number(name: str) -> int:
    match = re.fullmatch(r"docs-(\d+)\.jsonl(?:\.gz)?", Path(name).name)
    return int(match.group(1)) if match else -1


@dataclass(frozen=True)
class MiraclSource:
    """Where the files come from: `local_dir` when set, else the two hub repos at their revisions."""

    local_dir: str = ""
    topics_repo: str = TOPICS_REPO
    corpus_repo: str = CORPUS_REPO
    topics_revision: str = "main"
    corpus_revision: str = "main"

    def _hub_path(self, repo: str, revision: str, relpath: str) -> str:
        return f"datasets/{repo}@{revision}/{relpath}"

    def _fs(self):
        from huggingface_hub import HfFileSystem

        return HfFileSystem()

    def _where(self, repo: str, relpath: str) -> str:
        return str(Path(self.local_dir) / relpath) if self.local_dir else f"hf://datasets/{repo}/{relpath}"

    def open(self, which: str, relpath: str):
        """A binary file object of `relpath` in the topics or corpus repo (streamed from the hub)."""
        repo, revision = self._repo(which)
        if self.local_dir:
            path = Path(self.local_dir) / relpath
            if not path.is_file():
                raise MiraclError(f"{path}: not found (miracl.local_dir must hold {repo}'s layout)")
            return open(path, "rb")
        return self._hub_call(lambda: self._fs().open(self._hub_path(repo, revision, relpath), "rb"),
                              repo, relpath)

    def corpus_files(self, lang: str) -> list[str]:
        """The corpus files of one language, in shard order (docs-0, docs-1, ..., docs-10)."""
        sub = corpus_dir(lang)
        if self.local_dir:
            root = Path(self.local_dir) / sub
            names = [p.name for p in root.glob("docs-*.jsonl*")] if root.is_dir() else []
        else:
            repo, revision = self._repo("corpus")
            found = self._hub_call(lambda: self._fs().ls(self._hub_path(repo, revision, sub), detail=False),
                                   repo, sub)
            names = [Path(p).name for p in found]
        names = sorted((n for n in names if _shard_number(n) >= 0), key=_shard_number)
        if not names:
            raise MiraclError(f"{self._where(self.corpus_repo, sub)}: no docs-N.jsonl.gz corpus files")
        return [f"{sub}/{n}" for n in names]

    def provenance(self) -> dict:
        """What was read: the local folder, or each hub repo with the commit its revision resolved to."""
        if self.local_dir:
            return {"local_dir": self.local_dir}
        from huggingface_hub import HfApi

        out = {}
        for which in ("topics", "corpus"):
            repo, revision = self._repo(which)
            info = self._hub_call(lambda: HfApi().dataset_info(repo, revision=revision), repo, "")
            out[which] = {"repo": repo, "revision": revision, "commit": info.sha}
        return out

    def _repo(self, which: str) -> tuple[str, str]:
        if which == "topics":
            return self.topics_repo, self.topics_revision
        if which == "corpus":
            return self.corpus_repo, self.corpus_revision
        raise ValueError(f"which: 'topics' or 'corpus', got {which!r}")

    @staticmethod
    def _hub_call(call, repo: str, relpath: str):
        try:
            return call()
        except OSError as exc:  # huggingface_hub's and requests' errors are OSErrors
            raise hub_error(exc, f"hf://datasets/{repo}/{relpath}", repo) from exc


def hub_error(exc: Exception, where: str, repo: str) -> MiraclError:
    """The MiraclError that says what to do about a failed open or read (gated, offline, missing, corrupt)."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled
    from requests import RequestException

    if isinstance(exc, GatedRepoError):
        return MiraclError(f"{where}: {repo} is gated; accept its terms on https://huggingface.co/datasets/{repo} "
                           "and set HF_TOKEN (or run `huggingface-cli login`)")
    if isinstance(exc, FileNotFoundError):
        return MiraclError(f"{where}: not found ({exc})")
    if isinstance(exc, (OfflineModeIsEnabled, HfHubHTTPError, RequestException, ConnectionError, TimeoutError)):
        return MiraclError(f"{where}: cannot read from the Hugging Face hub ({type(exc).__name__}: {exc}); "
                           "give a local copy in the hub layout with miracl.local_dir")
    return MiraclError(f"{where}: unreadable ({exc})")  # truncated gzip, bad bytes


def _lines(source: MiraclSource, which: str, relpath: str):
    """(line number, text) of a text file, gunzipped when it ends in .gz; read errors become MiraclErrors."""
    repo = source._repo(which)[0]
    with source.open(which, relpath) as raw:
        stream = gzip.GzipFile(fileobj=raw) if relpath.endswith(".gz") else raw
        try:
            for number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8"), start=1):
                yield number, line.rstrip("\n").rstrip("\r")
        except (OSError, EOFError, UnicodeDecodeError) as exc:  # hub errors while streaming, truncated gzip
            raise hub_error(exc, source._where(repo, relpath), repo) from exc


def read_topics(source: MiraclSource, lang: str, split: str) -> pd.DataFrame:
    """qid, query of one language's topics, in file order."""
    rows, rel = [], topics_path(lang, split)
    for number, line in _lines(source, "topics", rel):
        if not line.strip():
            continue
        qid, sep, query = line.partition("\t")
        if not sep or not qid.strip() or not query.strip():
            raise MiraclError(f"{rel}:{number}: expected `qid<TAB>query`, got {line[:80]!r}")
        rows.append((qid.strip(), query.strip()))
    frame = pd.DataFrame(rows, columns=["qid", "query"])
    if frame["qid"].duplicated().any():
        raise MiraclError(f"{rel}: topic id {frame['qid'][frame['qid'].duplicated()].iloc[0]} listed twice")
    return frame


def read_qrels(source: MiraclSource, lang: str, split: str) -> dict[str, dict[str, int]]:
    """{qid: {docid: relevance}} of one language (judged non-relevant passages kept as 0)."""
    rel = qrels_path(lang, split)
    return parse_qrels(_lines(source, "topics", rel), rel, MiraclError)


def iter_passages(source: MiraclSource, lang: str, *, start: tuple[int, int] = (0, 0), with_title: bool = True,
                  files: list[str] | None = None):
    """(position after this passage, docid, text) in corpus order, streamed file by file.

    A position is (file index, lines read in that file); start resumes where a shard ended.
    text is "title text" when with_title (how MIRACL baselines encode a passage), else text.
    """
    files = files if files is not None else source.corpus_files(lang)
    first_file, skip = start
    for f in range(first_file, len(files)):
        for number, line in _lines(source, "corpus", files[f]):
            if f == first_file and number <= skip:
                continue
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                docid, title, text = str(doc["docid"]), doc.get("title") or "", doc["text"] or ""
            except (ValueError, KeyError, TypeError) as exc:
                raise MiraclError(f"{files[f]}:{number}: not a {{docid, title, text}} JSON line ({exc})") from exc
            yield (f, number), docid, (f"{title} {text}".strip() if with_title and title else text)


def count_passages(source: MiraclSource, lang: str, max_docs: int) -> int:
    """Passages that will be encoded: the published count on the hub, a line count in a local copy."""
    if not source.local_dir and lang in CORPUS_SIZES:
        total = CORPUS_SIZES[lang]  # streaming the hub's files only to count them would cost a download
    else:
        total = 0
        for rel in source.corpus_files(lang):  # non-empty lines; the JSON is checked when encoding
            total += sum(1 for _, line in _lines(source, "corpus", rel) if line.strip())
            if max_docs and total >= max_docs:
                break
    return min(total, max_docs) if max_docs else total


# -- embedding shards ------------------------------------------------------------------------------
# The encoding params and code that make the shards: shards made any other way are wiped, not resumed
FINGERPRINT_KEYS = ("split", "local_dir", "topics_repo", "corpus_repo", "max_docs", "with_title", "shard_size",
                    "batch_size", "max_length")
ENCODING_CODE = ("miracl.py", "encoder.py", "base_models.py", "tokenizer.py", "trec.py")  # trec: qrels.txt


def encoding_fingerprint(model_dir: Path, provenance: dict, model_params: dict, bf16: bool, miracl_params) -> dict:
    """What the embedding shards are a function of: model weights, code, source commits, encoding params."""
    code = {name: sha256_file(Path(__file__).with_name(name)) for name in ENCODING_CODE}
    return {"model": model_fingerprint(model_dir), "code": code, "source": provenance, "model_params": model_params,
            "bf16": bf16, **{k: getattr(miracl_params, k) for k in FINGERPRINT_KEYS}}


def model_fingerprint(model_dir: Path) -> str:
    """sha256 over the model's weight and config files: shards of another model are never reused."""
    h = hashlib.sha256()
    for path in sorted(Path(model_dir).glob("*")):
        if path.suffix in (".safetensors", ".bin", ".json") and path.name not in ("train_summary.json",):
            h.update(path.name.encode() + sha256_file(path).encode())
    return h.hexdigest()


def prepare_output(out_dir: Path, fingerprint: dict, languages) -> None:
    """Keep resumable shards only when they were made the same way; drop languages no longer asked for."""
    out_dir = Path(out_dir)
    record = out_dir / "fingerprint.json"
    if out_dir.exists() and (not record.is_file() or json.loads(record.read_text()) != fingerprint):
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for child in out_dir.iterdir():
        if child.is_dir() and child.name not in languages:
            shutil.rmtree(child)
    write_json(record, fingerprint)


def _embedding_shard(path: Path) -> int:
    return int(path.name.split(".")[0].removeprefix("shard-"))


def whole_shards(lang_dir: Path) -> dict[int, dict]:
    """{shard number: record} of the embedding shards written whole (their record is written last)."""
    return {_embedding_shard(p): json.loads(p.read_text()) for p in Path(lang_dir).glob("shard-*.json")}


def drop_unfinished_shards(lang_dir: Path) -> None:
    """Remove the files of shards an interrupted run left without their record."""
    whole = whole_shards(lang_dir)
    for stale in Path(lang_dir).glob("shard-*.*"):
        if _embedding_shard(stale) not in whole:
            stale.unlink()


def shard_paths(lang_dir: Path) -> tuple[list[Path], list[Path]]:
    """(vector files, docid files) of a finished language."""
    n = json.loads((Path(lang_dir) / "done.json").read_text())["shards"]
    return ([Path(lang_dir) / f"shard-{i:05d}.npy" for i in range(n)],
            [Path(lang_dir) / f"shard-{i:05d}.docids.txt" for i in range(n)])


def _encode_topics(encode_fn, source: MiraclSource, lang: str, lang_dir: Path, split: str) -> None:
    if not (lang_dir / "queries.parquet").is_file():
        write_qrels(lang_dir / "qrels.txt", read_qrels(source, lang, split))
        topics = read_topics(source, lang, split)
        vectors = encode_fn(topics["query"].tolist(), "query", f"miracl {lang} topics")
        with atomic_path(lang_dir / "queries.npy") as tmp:
            np.save(tmp, vectors)
        write_parquet(lang_dir / "queries.parquet", topics)


def _write_shard(lang_dir: Path, number: int, batch: list, vectors: np.ndarray, first_row: int) -> None:
    write_text(lang_dir / f"shard-{number:05d}.docids.txt", "".join(d + "\n" for _, d, _ in batch))
    with atomic_path(lang_dir / f"shard-{number:05d}.npy") as tmp:
        np.save(tmp, np.ascontiguousarray(vectors, dtype=np.float32))
    record = {"n": len(batch), "next": list(batch[-1][0]), "first_row": first_row}
    write_json(lang_dir / f"shard-{number:05d}.json", record)  # last: the shard is whole


def encode_language(encode_fn, source: MiraclSource, lang: str, lang_dir: Path, *, split: str, shard_size: int,
                    max_docs: int, with_title: bool, dim: int, ctx=None) -> dict:
    """Encode one language's topics and corpus into lang_dir, resuming: whole shards are not encoded again.

    encode_fn(texts, kind, desc) -> float32 [n, dim], kind "query" or "passage". With `ctx`
    (hybrid_ir.ranks.Context) of several ranks, every rank streams the corpus and encodes every
    world-th shard; rank 0 encodes the topics and writes done.json once every shard is whole.
    """
    ctx = ctx or Context()
    rank, world = ctx.rank, ctx.world_size
    lang_dir = Path(lang_dir)
    done = lang_dir / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    if rank == 0:
        lang_dir.mkdir(parents=True, exist_ok=True)
        _encode_topics(encode_fn, source, lang, lang_dir, split)
        drop_unfinished_shards(lang_dir)  # before any rank writes
    ctx.barrier()
    whole = whole_shards(lang_dir)
    number = 0
    while number in whole:  # resume the stream after the whole shards at the front
        number += 1
    encoded = sum(whole[i]["n"] for i in range(number))
    position = tuple(whole[number - 1]["next"]) if number else (0, 0)
    target = 0  # rank 0 alone counts the corpus (its progress bar) and checks the disk
    if rank == 0:
        target = count_passages(source, lang, max_docs)
        ensure_free_space(lang_dir, 4 * dim * max(0, target - encoded), f"MIRACL {lang} corpus embeddings")
    files = source.corpus_files(lang)
    stream = iter_passages(source, lang, start=position, with_title=with_title, files=files)
    with tqdm(total=target, initial=encoded, desc=f"miracl {lang} corpus", unit="passage", disable=rank > 0) as bar:
        while True:
            want = min(shard_size, max_docs - encoded) if max_docs else shard_size
            batch = list(itertools.islice(stream, want)) if want > 0 else []
            if not batch:
                break
            if number not in whole and number % world == rank:
                vectors = encode_fn([text for _, _, text in batch], "passage", None)
                _write_shard(lang_dir, number, batch, vectors, encoded)
            number += 1
            encoded += len(batch)
            bar.update(len(batch))
            if len(batch) < want:
                break
    ctx.barrier()
    summary = {"passages": encoded, "shards": number, "dim": dim, "files": len(files)}
    if rank == 0:
        if any(not (lang_dir / f"shard-{i:05d}.json").is_file() for i in range(number)):
            raise MiraclError(f"{lang_dir}: a shard is missing after encoding (a rank failed?); run the stage again")
        write_json(done, summary)
    ctx.barrier()
    return summary


# -- evaluation -----------------------------------------------------------------------------------
def docids_of(rows: np.ndarray, docid_files: list[Path], offsets: np.ndarray) -> np.ndarray:
    """Docids (object array shaped like rows) of global rows; -1 rows give ""; reads only the shards hit."""
    rows = np.asarray(rows)
    out = np.full(rows.shape, "", dtype=object)
    flat, flat_out = rows.ravel(), out.ravel()
    valid = flat >= 0
    shard = np.searchsorted(offsets, flat, side="right") - 1
    for s in np.unique(shard[valid]):
        ids = Path(docid_files[s]).read_text().splitlines()
        hit = valid & (shard == s)
        flat_out[hit] = [ids[i] for i in (flat[hit] - offsets[s]).tolist()]
    return flat_out.reshape(rows.shape)


def run_of(qids, scores: np.ndarray, docids: np.ndarray) -> dict[str, dict[str, float]]:
    """{qid: {docid: score}} with ties pushed one float32 ulp apart so every tool keeps our order."""
    strict = strictly_decreasing(np.where(np.isfinite(scores), scores, np.float32(-3.0))).tolist()
    run = {}
    for i, qid in enumerate(qids):
        run[str(qid)] = {d: float(s) for d, s in zip(docids[i].tolist(), strict[i]) if d}
    return run


def judge(run: dict, qrels: dict) -> pd.DataFrame:
    """Per-topic nDCG@10 and Recall@100 (pytrec_eval) of the topics with a relevant passage.

    A judged topic missing from the run scores 0 (trec_eval -c); topics without any relevant
    judgement are left out, as trec_eval does.
    """
    import pytrec_eval

    judged = {q: docs for q, docs in qrels.items() if any(r > 0 for r in docs.values())}
    evaluator = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.100"})
    results = evaluator.evaluate({q: run.get(q) or {"__none__": 0.0} for q in judged})
    rows = [{"qid": q, **{ours: float(results[q][key]) for key, ours in MEASURES.items()}} for q in sorted(judged)]
    return pd.DataFrame(rows, columns=["qid", *MEASURES.values()])


def summarize(per_query: pd.DataFrame, passages: dict) -> dict:
    """Metrics record: per language mean nDCG@10, Recall@100 and counts; `mean` is the macro average."""
    out = {}
    for lang, t in per_query.groupby("lang", sort=True):
        out[lang] = {m: float(t[m].mean()) for m in MEASURES.values()}
        out[lang].update(topics=int(len(t)), passages=int(passages[lang]))
    if out:
        langs = sorted(out)
        out["mean"] = {m: float(np.mean([out[lang][m] for lang in langs])) for m in MEASURES.values()}
    return out
