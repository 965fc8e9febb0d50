import gzip

import numpy as np
import pytest
import pytrec_eval

from hybrid_ir.metrics import evaluate_pool, ranks_of_relevant
from hybrid_ir.trec import SETTINGS, read_trec, strictly_decreasing, top_k, write_trec


def _pool(seed, n_qids=12, distractors=30):
    rng = np.random.default_rng(seed)
    langs = ["de", "en", "es"]
    q_lang, q_qid, c_id, c_lang, c_qids = [], [], [], [], []
    for i in range(n_qids):
        for lang in rng.choice(langs, rng.integers(1, 4), replace=False):
            q_lang.append(str(lang))
            q_qid.append(f"q{i}")
            c_id.append(f"{lang}:{i}:0")
            c_lang.append(str(lang))
            c_qids.append([f"q{i}"])
    for j in range(distractors):
        lang = str(rng.choice(langs))
        c_id.append(f"{lang}:x:{j}")
        c_lang.append(lang)
        c_qids.append([f"q{rng.integers(n_qids)}"] if j % 7 == 0 else [])  # a few second answers
    scores = np.round(rng.random((len(q_lang), len(c_lang))), 1).astype(np.float32)  # many exact ties
    return scores, dict(q_lang=q_lang, q_qid=q_qid, c_id=c_id, c_lang=c_lang, c_qids=c_qids)


def _evaluate(directory, setting, measures):
    qrels = read_trec(directory / f"{setting}.qrels.gz", "qrels")
    run = read_trec(directory / f"{setting}.run.gz", "run")
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


def test_trec_eval_agrees_with_our_metrics_at_full_depth_with_ties(tmp_path):
    scores, meta = _pool(1)
    write_trec(tmp_path, scores, **meta, depth=100, tag="t")  # every pool is smaller than 100
    ours = evaluate_pool(scores, meta["q_lang"], meta["q_qid"], meta["c_lang"], meta["c_qids"]).per_query_all
    for setting in SETTINGS:
        res = _evaluate(tmp_path, setting, {"map_cut_100", "recall_100"})
        rows = ours[ours["setting"] == setting]
        assert len(res) == len(rows) > 0
        for r in rows.itertuples():
            got = res[f"{r.qid}@{r.query_lang}>{r.passage_lang}"]
            assert got["map_cut_100"] == pytest.approx(r.ap, abs=1e-12)
            assert got["recall_100"] == 1.0


def test_trec_eval_agrees_with_our_metrics_cut_at_the_run_depth(tmp_path):
    scores, meta = _pool(2, n_qids=20, distractors=60)
    depth = 5
    write_trec(tmp_path, scores, **meta, depth=depth, tag="t")
    q_lang, c_lang = np.array(meta["q_lang"]), np.array(meta["c_lang"])
    res = _evaluate(tmp_path, "cross", {f"map_cut_{depth}", f"recall_{depth}"})
    checked = 0
    for x in ("de", "en", "es"):
        for y in ("de", "en", "es"):
            if x == y:
                continue
            rows, cols = np.flatnonzero(q_lang == x), np.flatnonzero(c_lang == y)
            rel = [np.array([j for j, c in enumerate(cols) if meta["q_qid"][i] in meta["c_qids"][c]]) for i in rows]
            ranks = ranks_of_relevant(scores[np.ix_(rows, cols)], rel)
            for i, r in zip(rows, ranks):
                if r.size == 0:
                    assert f"{meta['q_qid'][i]}@{x}>{y}" not in res
                    continue
                got = res[f"{meta['q_qid'][i]}@{x}>{y}"]
                ap_cut = np.sum(np.arange(1, r.size + 1)[r <= depth] / r[r <= depth]) / r.size
                assert got[f"map_cut_{depth}"] == pytest.approx(ap_cut, abs=1e-12)
                assert got[f"recall_{depth}"] == pytest.approx(np.mean(r <= depth), abs=1e-12)
                checked += 1
    assert checked > 20


def _lines(path):
    return gzip.decompress(path.read_bytes()).decode().splitlines()


def test_run_file_layout(tmp_path):
    scores, meta = _pool(3)
    write_trec(tmp_path / "out", scores, **meta, depth=4, tag="hybrid")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{s}.{k}.gz" for s in SETTINGS for k in ("run", "qrels"))
    lines = _lines(tmp_path / "out" / "multi.run.gz")
    first = lines[0].split()
    assert len(first) == 6 and first[1] == "Q0" and first[3] == "1" and first[5] == "hybrid"
    assert first[0].endswith(">all") and "@" in first[0]
    by_query = {}
    for line in lines:
        qid, _, doc, rank, score, _ = line.split()
        by_query.setdefault(qid, []).append((int(rank), float(score), doc))
    for ranked in by_query.values():
        assert [r for r, _, _ in ranked] == list(range(1, 5))
        assert all(a[1] > b[1] for a, b in zip(ranked, ranked[1:]))  # strictly decreasing
        assert len({d for _, _, d in ranked}) == 4
    qrels = _lines(tmp_path / "out" / "mono.qrels.gz")
    assert all(line.split()[1] == "0" and line.split()[3] == "1" for line in qrels)
    assert all(line.split()[0].split("@")[1][:2] == line.split()[2][:2] for line in qrels)  # mono: same language


def test_ties_follow_the_row_order_and_scores_become_strictly_decreasing():
    s = np.array([[0.5, 0.7, 0.5, 0.7, 0.5]], dtype=np.float32)
    order, top = top_k(s, 4)
    assert order.tolist() == [[1, 3, 0, 2]]
    fixed = strictly_decreasing(top)
    assert np.all(np.diff(fixed[0]) < 0) and np.all(fixed <= top)
    assert np.max(top - fixed) < 1e-6 and fixed[0, 0] == np.float32(0.7) and fixed[0, 2] == np.float32(0.5)
    assert f"{float(fixed[0, 1]):.9g}" != f"{float(fixed[0, 0]):.9g}"  # survives printing


def test_only_the_listed_settings_are_written_the_same_bytes_every_time(tmp_path):
    scores, meta = _pool(4)
    write_trec(tmp_path / "all", scores, **meta, depth=5, tag="t")
    write_trec(tmp_path / "some", scores, **meta, depth=5, tag="t", settings=("multi", "mono"))
    assert sorted(p.name for p in (tmp_path / "some").iterdir()) == [
        "mono.qrels.gz", "mono.run.gz", "multi.qrels.gz", "multi.run.gz"]
    for name in ("mono.run.gz", "mono.qrels.gz", "multi.run.gz", "multi.qrels.gz"):
        data = (tmp_path / "some" / name).read_bytes()
        assert data == (tmp_path / "all" / name).read_bytes()
        assert data[3] == 0 and data[4:8] == bytes(4)  # gzip header: no file name, mtime 0
    plain = tmp_path / "mono.run"
    plain.write_text(gzip.decompress((tmp_path / "all" / "mono.run.gz").read_bytes()).decode())
    assert read_trec(plain, "run") == read_trec(tmp_path / "all" / "mono.run.gz", "run")
    with pytest.raises(ValueError, match="unknown TREC settings"):
        write_trec(tmp_path / "bad", scores, **meta, settings=("bilingual",))
