"""The MT stage's cache and the MIRACL embedding shards split over two torchrun ranks (gloo on CPU):
the same bytes as one process, and an interrupted split run resumes by rank."""
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from hybrid_ir import distributed, miracl, translate
from hybrid_ir.miracl import MiraclSource
from tests.helpers import REPO, files_of
from tests.miracl_fixture import from_xquad_r, write_layout
from tests.test_miracl import DOCS, QRELS, TOPICS, fake_encoder
from tests.test_translate import _params

WORKER = REPO / "tests" / "shard_worker.py"


def _torchrun(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    proc = subprocess.run(distributed.launch_command(2, WORKER, [str(a) for a in args]), env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def mt(tmp_path_factory):
    from tests import source_fixtures as fx
    from hybrid_ir.sources import Skips, squad_mlqa_units

    root = tmp_path_factory.mktemp("mt-shards")
    fx.write_squad_parquet(root / "squad")
    fx.write_mlqa(root / "mlqa", ["de"])
    units = squad_mlqa_units(str(root / "squad"), str(root / "mlqa"), ["en", "de"], 1, 0, Skips())
    units.to_parquet(root / "units.parquet", index=False)
    return root, units, fx.build_tiny_translation_model(root / "tiny-nllb")


def test_two_ranks_write_the_translation_cache_of_one_process(mt, monkeypatch):
    root, units, model = mt
    tp = _params(model)
    wanted = translate.requests(units, tp)
    flush = 5  # several parts per language, each split over the ranks by batch (batch_size 4)
    assert len(wanted["ru"]) > 2 * flush
    monkeypatch.setattr(translate, "FLUSH_ROWS", flush)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the same kernels, so the same bits
    try:
        translate.update_cache(root / "one", wanted, tp, progress=False)
    finally:
        torch.set_num_threads(threads)
    _torchrun("translate", root / "units.parquet", model, root / "two", flush)
    stats = [json.loads((root / "two" / f"stats-{r}.json").read_text()) for r in (0, 1)]
    assert stats[0] == stats[1] and stats[0]["ru"]["translated"] == len(wanted["ru"])
    two = {name: data for name, data in files_of(root / "two").items() if not name.startswith("stats-")}
    assert two == files_of(root / "one") and "pending" not in str(list(two))


def test_a_rank_share_left_on_disk_is_not_translated_again(mt):
    root, units, model = mt
    tp = _params(model, languages=("th",))
    chunk = translate.requests(units, tp)["th"][:5]
    rank1_batch = translate.length_batches(chunk, tp.batch_size)[1]  # the second batch: rank 1's
    cache = root / "resumed"

    calls = []

    def fake(texts, lang):
        calls.append(texts)
        return [f"{lang}:{t}" for t in texts]

    class Rank1(distributed.Context):  # rank 1 of 2, alone: its barriers return at once
        def barrier(self):
            pass

    ctx = Rank1(rank=1, world_size=2)
    translate._translate_chunk(cache, fake, chunk, "th", tp, ctx, progress=False)  # rank 1 dies after its share
    assert calls == [[chunk[i] for i in rank1_batch]] and not list(cache.glob("part-*"))
    calls.clear()
    translate._translate_chunk(cache, fake, chunk, "th", tp, ctx, progress=False)
    assert calls == [] and len(list((cache / "pending").iterdir())) == 1


def test_two_ranks_write_the_miracl_shards_of_one_process_and_resume(tmp_path):
    layout = write_layout(tmp_path / "miracl", "sw", TOPICS, QRELS, DOCS, docs_per_file=2)
    one = tmp_path / "one"
    miracl.encode_language(fake_encoder(), MiraclSource(str(layout)), "sw", one, split="dev", shard_size=4,
                           max_docs=0, with_title=True, dim=8)
    two = tmp_path / "two"
    _torchrun("miracl", layout, two, 4, tmp_path / "calls")
    calls = [json.loads((tmp_path / f"calls.{r}").read_text()) for r in (0, 1)]
    assert calls[0] == [["query", 3]] + [["passage", 4]] * 3 + [["passage", 1]]  # shards 0, 2, 4, 6
    assert calls[1] == [["passage", 4]] * 3  # shards 1, 3, 5
    assert files_of(two) == files_of(one)
    # killed mid-run: shard 3 lost its record (its vectors half-written), done.json not yet written
    (two / "shard-00003.json").unlink()
    (two / "done.json").unlink()
    _torchrun("miracl", layout, two, 4, tmp_path / "again")
    again = [json.loads((tmp_path / f"again.{r}").read_text()) for r in (0, 1)]
    assert again == [[], [["passage", 4]]]  # only shard 3, by its owner
    assert files_of(two) == files_of(one)


def test_miracl_encode_stage_on_two_processes_writes_the_shards_of_one(tmp_path, tiny_model_dir):
    """stages/miracl_encode.py with miracl.processes=2 re-runs itself under torchrun and writes the output of
    one process; fp32, one process on both cores against two ranks on one core each (the library tests
    above hold the threads equal and compare every byte)."""
    copy = from_xquad_r(tmp_path / "copy", "th", articles=range(2), docs_per_file=20)
    outs = {}
    for processes in (1, 2):
        work = tmp_path / f"work{processes}"
        shutil.copytree(tiny_model_dir, work / "data" / "models" / "base")
        params = {"model": {"source": "tiny-random", "max_length": 32}, "encode": {"precision": "fp32"},
                  "miracl": {"languages": ["th"], "local_dir": str(copy), "shard_size": 8, "batch_size": 8,
                             "max_length": 32, "processes": processes}}
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
        env.pop("HYBRID_IR_PARAMS", None)
        proc = subprocess.run([sys.executable, str(REPO / "stages" / "miracl_encode.py"), "base"], cwd=work, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outs[processes] = files_of(work / "data" / "miracl" / "embeddings" / "base")
    assert json.loads(outs[1]["th/done.json"])["shards"] > 3 and outs[2].keys() == outs[1].keys()
    for name, data in outs[1].items():  # ids, records, fingerprint: the same bytes
        if name.endswith(".npy"):  # vectors: 2 threads against 1 round differently in the last bits
            a, b = (np.load(io.BytesIO(o[name])) for o in (outs[1], outs[2]))
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-6, name
        else:
            assert outs[2][name] == data, name
