import json
import shutil

import pytest

from hybrid_ir.corpora import SOURCES, CorpusError, answer_sentence, fetch_corpus, read_squad, sha256_file
from tests.helpers import SHARED_CORPORA


def test_pins_match_the_mirror_sums():
    for source in SOURCES.values():
        sums = dict(
            reversed(line.split()) for line in (SHARED_CORPORA / source.mirror_dir / "SHA256SUMS").read_text().splitlines()
        )
        assert {name: sums[name] for name in source.files} == source.files


def test_fetch_from_mirror_writes_files_and_manifest(tmp_path):
    out = tmp_path / "corpora" / "mlqa_r"
    manifest = fetch_corpus("mlqa_r", out, SHARED_CORPORA, allow_network=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(list(SOURCES["mlqa_r"].files) + ["MANIFEST.json"])
    assert manifest["commit"].startswith("354d67d1")
    assert all(sha256_file(out / n) == h for n, h in SOURCES["mlqa_r"].files.items())
    assert json.loads((out / "MANIFEST.json").read_text())["files"]["de.json"]["from"] == "mirror"


def _mirror_copy(tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(SHARED_CORPORA / "mlqa-r", mirror / "mlqa-r")
    return mirror


def test_checksum_mismatch_names_file_and_leaves_nothing(tmp_path):
    mirror = _mirror_copy(tmp_path)
    path = mirror / "mlqa-r" / "es.json"
    path.write_bytes(path.read_bytes()[:-100])  # truncated download
    out = tmp_path / "data" / "mlqa_r"
    with pytest.raises(CorpusError) as err:
        fetch_corpus("mlqa_r", out, mirror, allow_network=False)
    msg = str(err.value)
    assert "mlqa_r/es.json: sha256 mismatch" in msg
    assert SOURCES["mlqa_r"].files["es.json"] in msg and sha256_file(path) in msg
    assert not out.exists()
    assert list((tmp_path / "data").iterdir()) == []  # no temporary leftovers


def test_old_output_survives_a_failed_refetch(tmp_path):
    mirror = _mirror_copy(tmp_path)
    out = tmp_path / "data" / "mlqa_r"
    fetch_corpus("mlqa_r", out, mirror, allow_network=False)
    (mirror / "mlqa-r" / "zh.json").unlink()
    with pytest.raises(CorpusError, match="mlqa_r/zh.json: not in the mirror .* network is disabled"):
        fetch_corpus("mlqa_r", out, mirror, allow_network=False)
    assert sha256_file(out / "zh.json") == SOURCES["mlqa_r"].files["zh.json"]


def test_no_mirror_and_no_network(tmp_path):
    with pytest.raises(CorpusError, match="xquad/xquad.ar.json: not in the mirror"):
        fetch_corpus("xquad", tmp_path / "x", None, allow_network=False)


def test_malformed_json_and_answer_outside_spans(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [')
    with pytest.raises(CorpusError, match="bad.json: cannot read SQuAD JSON"):
        read_squad(bad)
    bad.write_text('{"version": "1.1"}')
    with pytest.raises(CorpusError, match="no 'data' list"):
        read_squad(bad)
    assert answer_sentence([[0, 10], [11, 20]], 12, "f") == 1
    with pytest.raises(CorpusError, match="q1: answer start 10 lies in 0 sentence spans"):
        answer_sentence([[0, 10], [11, 20]], 10, "q1")
