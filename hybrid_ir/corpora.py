"""Pinned corpora (download or local mirror, sha256-checked) and the SQuAD / LAReQA readers."""
from __future__ import annotations

import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import CorpusError
from .io import atomic_path, sha256_file, write_json


@dataclass(frozen=True)
class Source:
    name: str  # folder under data/corpora
    repo: str
    commit: str
    path_in_repo: str  # folder in the upstream repo ("" for its root)
    mirror_dir: str  # folder name in the local mirror
    files: dict  # file name -> sha256

    def url(self, filename: str) -> str:
        path = f"{self.path_in_repo}/{filename}" if self.path_in_repo else filename
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{path}"


SOURCES = {
    "xquad": Source(
        "xquad", "google-deepmind/xquad", "7d30520c717524000f0d9d2f9c10a069acd9d285", "", "xquad",
        {
            "xquad.ar.json": "abdabd7afed5c635d99cca0f3f0d0c9d9ed0bc77451e963c2e4e0638c29e486d",
            "xquad.de.json": "990b5d746746ed65ed4702ea5f35f99ffa4e2f1c390c07d003642acd937916f9",
            "xquad.el.json": "821cf0f88e73fa258fd2f548b19b6ec39f7025059e16f6f9fc8cd797c9c3663e",
            "xquad.en.json": "e4c57d1c9143aaa1c5d265ba5987a65f4e69528d2a98f29d6e75019b10344f29",
            "xquad.es.json": "dcbae93ec3a9f4b9e78fd834a171d6f96c1a875e10e15b7530b7e4ef4971e37e",
            "xquad.hi.json": "df2cce3532b37e9beb8979704b5c9a4bf874358f105395a298b89427b43b9d24",
            "xquad.ro.json": "94f8d54e93ad2b7dd2e76dd921a666b5b8eff2d4379df9f179c42b445f09643f",
            "xquad.ru.json": "208d5b1aa154c52b1b5c5eda16281e455e8fd198cdb9af3f469f0d6037d973bf",
            "xquad.th.json": "5cdda11d0e1e075f7872abf4e6ae830388ce7f617964d542308e9ae4257e0f43",
            "xquad.tr.json": "92179a564774b7696100d144c1e10870d0a966b6fccbdd254a65b9d2ab1971cc",
            "xquad.vi.json": "f619a1eb11fb42d3ab0834259e488a65f585447ef6154437bfb7199d85161a04",
            "xquad.zh.json": "691d0b3359bc6b8faa8de931dfdfe21d50a65861ae348e32a0d1a0190b0c8835",
        },
    ),
    "xquad_r": Source(
        "xquad_r", "google-research-datasets/lareqa", "9bc8c7fb6dd8d01d72a05a93c2cb96882b0d299c", "xquad-r",
        "xquad-r",
        {
            "ar.json": "c52922d3b8ac1ae03ed5ac38647ad59870dca3dda2beefe18ecdc30729acb69d",
            "de.json": "16fb0f4bf4916154b585a20c24c66074591c9718a1affe764ff4697572328949",
            "el.json": "163fd43ee785a30eb534ae2061e9eaa766a7ee4e8ffce5e4b422480c150f64b6",
            "en.json": "7b0954f39297c27a31fef610f0883337dd2907fa8699151dc922afdd0fa12ffe",
            "es.json": "f8e836b2d91009c4363e04315f7ede363eedbbb49c67dda60de6c4aa782f58de",
            "hi.json": "ea45ba8ae4513d1533b222bebdc02a90bc319c055d3aeea68584a053d2e92872",
            "ru.json": "7f4dff853538b9a5fcc28c070b8bb983a5c5d190ac747b8e005a1ada9cab18f1",
            "th.json": "c3a041864c3a9fb0b4dd91cfdf99cf36b411b3e704c58a303c97bc6dc786cfe4",
            "tr.json": "f3e8c13002bbce154a4578f535f7533cb70f3da08840e6b62735935baec7bd94",
            "vi.json": "e35926bf5cc6fc6ecbdfca49467aabeb454f08d152d7818143a906bd31dde995",
            "zh.json": "80c2cde7b9c2fb134c303cbb52f2ba396ead9eb0014aec43993543d2ba9e93ed",
        },
    ),
    "mlqa_r": Source(
        "mlqa_r", "google-research-datasets/lareqa", "354d67d1cd066854cdfbf5ad0e6105528976141d", "mlqa-r",
        "mlqa-r",
        {
            "ar.json": "2132fbc03208535c0fe01f2e2c5121d06f9c2aa799af93b0a719dbc105bdf137",
            "de.json": "ce9454dc5aa6f2d85c23cd6e49cb367fbb7c4c6e62d7f71e355c6b5dae4d0886",
            "en.json": "fedd9a5cc0848dda80caf84aa36f482adaae230526a3f6e9e86926a93ef3b1e4",
            "es.json": "70ecba276b8c96a692b120693a595d076ce94ad21d4b28311538a9fcbfe0f9d7",
            "hi.json": "4dd0fb3c06f737a5481d705bc1dcac7876712a5815c9265908fbb3a0696cb654",
            "vi.json": "9d3baff6ba03e6793b25594217265ea59a136b9733833dca8a9582a84a78ff85",
            "zh.json": "57f01d2fff50cf3392805635b01445339f225ad5bf28ba8443b12f8dbd1e69dc",
        },
    ),
}


def _fetch_one(source: Source, filename: str, dest: Path, mirror: Path | None, allow_network: bool) -> str:
    """Copy one file from the mirror or the pinned URL into dest; return where it came from."""
    local = mirror / source.mirror_dir / filename if mirror else None
    if local is not None and local.is_file():
        shutil.copyfile(local, dest)
        origin = "mirror"
    elif allow_network:
        url = source.url(filename)
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:
                shutil.copyfileobj(resp, out)
        except OSError as exc:
            raise CorpusError(f"{source.name}/{filename}: not in the mirror and download of {url} failed: {exc}")
        origin = url
    else:
        where = local if local is not None else "no mirror configured"
        raise CorpusError(f"{source.name}/{filename}: not in the mirror ({where}) and the network is disabled")
    expected, actual = source.files[filename], sha256_file(dest)
    if actual != expected:
        raise CorpusError(
            f"{source.name}/{filename}: sha256 mismatch (from {origin}): expected {expected}, actual {actual}"
        )
    return origin


def fetch_corpus(name: str, out_dir: Path, mirror: Path | None, allow_network: bool, progress=None) -> dict:
    """Fetch every pinned file of one corpus into out_dir, atomically; return its manifest."""
    source = SOURCES[name]
    manifest = {"repo": source.repo, "commit": source.commit, "path": source.path_in_repo, "files": {}}
    with atomic_path(out_dir, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        for filename in sorted(source.files):
            origin = _fetch_one(source, filename, tmp / filename, mirror, allow_network)
            manifest["files"][filename] = {"sha256": source.files[filename], "from": origin}
            if progress is not None:
                progress.update(1)
        write_json(tmp / "MANIFEST.json", manifest)
    return manifest


def read_squad(path: Path) -> list[dict]:
    """The `data` list (articles) of a SQuAD-format JSON file."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read SQuAD JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise CorpusError(f"{path}: no 'data' list (not SQuAD format)")
    return doc["data"]


def answer_sentence(breaks, answer_start: int, where: str) -> int:
    """Index of the sentence span that contains the answer start."""
    hits = [i for i, (start, end) in enumerate(breaks) if start <= answer_start < end]
    if len(hits) != 1:
        raise CorpusError(f"{where}: answer start {answer_start} lies in {len(hits)} sentence spans, expected 1")
    return hits[0]


def iter_paragraphs(articles: list[dict], path: Path):
    """Yield (article_index, paragraph_index, paragraph) with the fields a LAReQA file must have."""
    for a_idx, article in enumerate(articles):
        for p_idx, para in enumerate(article.get("paragraphs", [])):
            for key in ("context", "qas"):
                if key not in para:
                    raise CorpusError(f"{path}: article {a_idx} paragraph {p_idx} has no '{key}'")
            yield a_idx, p_idx, para


def qa_answer_start(qa: dict, where: str) -> int:
    try:
        return int(qa["answers"][0]["answer_start"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CorpusError(f"{where}: question {qa.get('id', '?')} has no usable answer ({exc})") from exc
