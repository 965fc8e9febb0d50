"""MIRACL reading, resumable shard encoding and nDCG@10 / Recall@100, offline on fixtures in the hub layout."""
import gzip
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from hybrid_ir import miracl
from hybrid_ir.miracl import MiraclError, MiraclSource
from tests.helpers import SHARED_CORPORA
from tests.miracl_fixture import from_xquad_r, write_layout

DOCS = [{"docid": f"{i // 3}#{i % 3}", "title": f"T{i // 3}", "text": f"passage {i}"} for i in range(25)]
TOPICS = [("q1", "first question"), ("q2", "second question"), ("q3", "no relevant passage")]
QRELS = [("q1", "0#1", 1), ("q1", "4#2", 1), ("q1", "2#0", 0), ("q2", "7#0", 1), ("q3", "1#1", 0)]


@pytest.fixture
def layout(tmp_path):
    return write_layout(tmp_path / "miracl", "sw", TOPICS, QRELS, DOCS, docs_per_file=2)  # 13 files


def fake_encoder(dim=8, calls=None, fail_at=None):
    """Deterministic unit vectors from each text's hash; counts calls and can fail like a killed run."""
    def encode_fn(texts, kind, desc):
        if calls is not None:
            calls.append((kind, len(texts)))
            if fail_at is not None and len(calls) == fail_at:
                raise KeyboardInterrupt
        rows = [np.frombuffer(hashlib.sha256(f"{kind}:{t}".encode()).digest()[: 4 * dim], dtype=np.uint32)
                for t in texts]
        v = np.asarray(rows, dtype=np.float64).reshape(len(texts), dim) - 2**31
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return encode_fn


def test_reads_topics_qrels_and_corpus_in_shard_order(layout):
    source = MiraclSource(str(layout))
    assert miracl.read_topics(source, "sw", "dev")["qid"].tolist() == ["q1", "q2", "q3"]
    assert miracl.read_qrels(source, "sw", "dev")["q1"] == {"0#1": 1, "4#2": 1, "2#0": 0}
    files = source.corpus_files("sw")
    assert files[:3] == ["miracl-corpus-v1.0-sw/docs-0.jsonl.gz", "miracl-corpus-v1.0-sw/docs-1.jsonl.gz",
                         "miracl-corpus-v1.0-sw/docs-2.jsonl.gz"] and files[-1].endswith("docs-12.jsonl.gz")
    passages = list(miracl.iter_passages(source, "sw"))
    assert [d for _, d, _ in passages] == [d["docid"] for d in DOCS]
    assert passages[4][2] == "T1 passage 4" and passages[4][0] == (2, 1)
    assert [t for _, _, t in miracl.iter_passages(source, "sw", with_title=False)][4] == "passage 4"
    resumed = list(miracl.iter_passages(source, "sw", start=passages[10][0]))
    assert [d for _, d, _ in resumed] == [d["docid"] for d in DOCS[11:]]
    assert miracl.count_passages(source, "sw", 0) == 25 and miracl.count_passages(source, "sw", 7) == 7


def test_bad_files_give_errors_naming_the_file(layout):
    source = MiraclSource(str(layout))
    with pytest.raises(MiraclError, match="topics.miracl-v1.0-fi-dev.tsv: not found"):
        miracl.read_topics(source, "fi", "dev")
    topics = layout / miracl.topics_path("sw", "dev")
    topics.write_text("q1 without a tab\n")
    with pytest.raises(MiraclError, match=r"topics.miracl-v1.0-sw-dev.tsv:1: expected `qid<TAB>query`"):
        miracl.read_topics(source, "sw", "dev")
    shard = layout / miracl.corpus_dir("sw") / "docs-3.jsonl.gz"
    shard.write_bytes(shard.read_bytes()[:-9])  # truncated download
    with pytest.raises(MiraclError, match="docs-3.jsonl.gz: unreadable"):
        list(miracl.iter_passages(source, "sw"))
    with gzip.open(shard, "wt") as f:
        f.write('{"docid": "x"}\n')
    with pytest.raises(MiraclError, match=r"docs-3.jsonl.gz:1: not a \{docid, title, text\} JSON line"):
        list(miracl.iter_passages(source, "sw"))


def test_hub_unreachable_says_to_use_a_local_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(MiraclError, match="hf://datasets/miracl/miracl-corpus/miracl-corpus-v1.0-sw: .*miracl.local_dir"):
        MiraclSource().corpus_files("sw")


def test_encoding_writes_shards_and_resumes_after_an_interruption(layout, tmp_path):
    source = MiraclSource(str(layout))
    kwargs = dict(split="dev", shard_size=4, max_docs=0, with_title=True, dim=8)
    whole = miracl.encode_language(fake_encoder(), source, "sw", tmp_path / "whole", **kwargs)
    assert whole == {"passages": 25, "shards": 7, "dim": 8, "files": 13}
    vec_files, id_files = miracl.shard_paths(tmp_path / "whole")
    assert [len(np.load(f)) for f in vec_files] == [4, 4, 4, 4, 4, 4, 1]
    assert sum((f.read_text().splitlines() for f in id_files), []) == [d["docid"] for d in DOCS]

    calls = []
    with pytest.raises(KeyboardInterrupt):  # killed while encoding the third shard
        miracl.encode_language(fake_encoder(calls=calls, fail_at=4), source, "sw", tmp_path / "resumed", **kwargs)
    assert not (tmp_path / "resumed" / "done.json").exists()
    calls.clear()
    miracl.encode_language(fake_encoder(calls=calls), source, "sw", tmp_path / "resumed", **kwargs)
    assert calls == [("passage", 4)] * 4 + [("passage", 1)]  # topics and the 2 whole shards are not redone
    for name in sorted(p.name for p in (tmp_path / "whole").iterdir()):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name


def test_max_docs_caps_the_corpus(layout, tmp_path):
    summary = miracl.encode_language(fake_encoder(), MiraclSource(str(layout)), "sw", tmp_path / "e", split="dev",
                                     shard_size=4, max_docs=10, with_title=True, dim=8)
    assert summary["passages"] == 10 and summary["shards"] == 3


def test_output_is_wiped_when_made_another_way(tmp_path):
    out = tmp_path / "emb"
    miracl.prepare_output(out, {"model": "a"}, ["sw"])
    (out / "sw").mkdir()
    (out / "sw" / "shard-00000.json").write_text("{}")
    (out / "fi").mkdir()
    miracl.prepare_output(out, {"model": "a"}, ["sw"])
    assert (out / "sw" / "shard-00000.json").exists() and not (out / "fi").exists()
    miracl.prepare_output(out, {"model": "b"}, ["sw"])
    assert not (out / "sw").exists()


def test_judge_matches_hand_computed_ndcg_and_recall():
    qrels = {"q1": {"a": 1, "b": 1, "c": 0}, "q2": {"d": 2, "e": 1}, "q3": {"f": 0}, "q4": {"g": 1}}
    run = {"q1": {"x": 0.9, "a": 0.8, "c": 0.7, "b": 0.1}, "q2": {"e": 0.5, "d": 0.4}, "q3": {"f": 1.0}}
    table = miracl.judge(run, qrels).set_index("qid")
    assert list(table.index) == ["q1", "q2", "q4"]  # q3 has no relevant passage; q4 is missing from the run
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    assert table.loc["q1", "ndcg_10"] == pytest.approx(dcg / (1 + 1 / math.log2(3)), abs=1e-12)
    assert table.loc["q2", "ndcg_10"] == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)), abs=1e-12)
    assert table.loc["q1", "recall_100"] == 1.0 and table.loc["q4", "ndcg_10"] == 0.0
    assert table.loc["q4", "recall_100"] == 0.0


def test_run_ties_keep_our_order_for_trec_tools():
    scores = np.array([[0.5, 0.5, 0.5, 0.2]], dtype=np.float32)
    docids = np.array([["z", "b", "y", "a"]], dtype=object)
    run = miracl.run_of(["q"], scores, docids)["q"]
    assert sorted(run, key=lambda d: -run[d]) == ["z", "b", "y", "a"]
    qrels = {"q": {"y": 1}}
    # trec_eval would rank tied docids in reverse order (z, y, b); strictly decreasing scores keep rank 3
    assert miracl.judge({"q": run}, qrels)["ndcg_10"].iloc[0] == pytest.approx(1 / math.log2(4))


def test_summary_is_a_macro_average_over_languages():
    per_query = pd.DataFrame({"lang": ["sw", "sw", "yo"], "qid": ["a", "b", "c"],
                              "ndcg_10": [1.0, 0.0, 0.2], "recall_100": [1.0, 1.0, 0.0]})
    summary = miracl.summarize(per_query, {"sw": 10, "yo": 5})
    assert summary["sw"] == {"ndcg_10": 0.5, "recall_100": 1.0, "topics": 2, "passages": 10}
    assert summary["mean"]["ndcg_10"] == pytest.approx(0.35) and miracl.summarize(per_query.iloc[:0], {}) == {}


def test_docids_of_global_rows_across_shards(tmp_path):
    files = []
    for i, ids in enumerate((["a", "b"], ["c"], ["d", "e", "f"])):
        files.append(tmp_path / f"{i}.txt")
        files[-1].write_text("\n".join(ids) + "\n")
    rows = np.array([[5, 0, -1], [2, 3, 1]])
    assert miracl.docids_of(rows, files, np.array([0, 2, 3, 6])).tolist() == [["f", "a", ""], ["c", "d", "b"]]


@pytest.mark.skipif(not (SHARED_CORPORA / "xquad-r" / "th.json").exists(), reason="needs ../shared/corpora")
def test_xquad_r_fixture_has_the_miracl_layout(tmp_path):
    root = from_xquad_r(tmp_path, "th", articles=range(2), docs_per_file=10)
    source = MiraclSource(str(root))
    topics, qrels = miracl.read_topics(source, "th", "dev"), miracl.read_qrels(source, "th", "dev")
    docids = {d for _, d, _ in miracl.iter_passages(source, "th")}
    assert len(topics) > 20 and set(qrels) == set(topics["qid"]) and len(source.corpus_files("th")) >= 2
    assert all(any(r == 1 for r in docs.values()) and set(docs) <= docids for docs in qrels.values())
    first = json.loads(gzip.open(root / miracl.corpus_dir("th") / "docs-0.jsonl.gz", "rt").readline())
    assert set(first) == {"docid", "title", "text"}


def test_gated_repo_while_streaming_says_to_accept_the_terms(monkeypatch):
    import io

    from huggingface_hub.errors import GatedRepoError

    class Gated(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            raise GatedRepoError("401 Client Error: access to miracl/miracl is restricted")

    monkeypatch.setattr(MiraclSource, "open", lambda self, which, relpath: io.BufferedReader(Gated()))
    with pytest.raises(MiraclError, match=r"hf://datasets/miracl/miracl/miracl-v1.0-sw/topics/.*: miracl/miracl is "
                                          r"gated; accept its terms on https://huggingface.co/datasets/miracl/miracl "
                                          r"and set HF_TOKEN"):
        miracl.read_topics(MiraclSource(), "sw", "dev")


@pytest.mark.parametrize("index", ["flat", "ivfpq"])
def test_evaluate_stage_searches_the_shards_with_either_index(tmp_path, index):
    import os
    import subprocess
    import sys

    import yaml

    from tests.helpers import REPO

    docs = [{"docid": f"d{i}", "title": "", "text": f"passage {i}"} for i in range(600)]
    topics = [(f"q{i}", f"topic {i}") for i in range(30)]
    qrels = [(f"q{i}", f"d{7 * i}", 1) for i in range(30)]
    source = MiraclSource(str(write_layout(tmp_path / "copy", "sw", topics, qrels, docs, docs_per_file=100)))
    work = tmp_path / "work"
    encode = fake_encoder(dim=8)

    def encode_fn(texts, kind, desc):  # topic i lands next to passage 7i
        if kind == "query":
            texts = [f"passage {7 * int(t.split()[1])}" for t in texts]
        return encode(texts, "passage", desc)

    miracl.encode_language(encode_fn, source, "sw", work / "data/miracl/embeddings/base/sw", split="dev",
                           shard_size=128, max_docs=0, with_title=False, dim=8)
    params = {"miracl": {"languages": ["sw"], "index": index, "pq_bytes": 4, "ivf_lists": 4, "nprobe": 4,
                         "train_size": 1000, "refine": 4}}
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "miracl_evaluate.py"), "base"], cwd=work,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((work / "reports/miracl/base.json").read_text())
    assert metrics["sw"]["topics"] == 30 and metrics["sw"]["passages"] == 600
    assert metrics["sw"]["ndcg_10"] == 1.0 and metrics["mean"]["recall_100"] == 1.0  # exact re-scoring finds it
    run_lines = (work / "data/miracl_runs/base/sw.run").read_text().splitlines()
    assert len(run_lines) == 30 * 100 and run_lines[0].split()[:4] == ["q0", "Q0", "d0", "1"]
