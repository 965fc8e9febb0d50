"""Shared test paths and the temporary git + DVC repo that runs the real dvc.yaml."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPORA = REPO.parent / "shared" / "corpora"
VARIANTS = ["base", "mono", "cross", "hybrid"]


def random_pool(n_qids: int, seed: int, decimals: int | None = 2, skill: float = 0.0, langs=("ar", "de", "en")):
    """(scores, evaluate_pool's keyword arguments) of a random multilingual pool: each question in 1 to
    len(langs) languages with one answer per language, plus distractors; `decimals` rounds the scores
    (ties on purpose), `skill` lifts the answers' scores (a better model)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    q_lang, q_qid, c_lang, c_qids = [], [], [], []
    for i in range(n_qids):
        for lang in rng.choice(langs, rng.integers(1, len(langs) + 1), replace=False):
            q_lang.append(str(lang))
            q_qid.append(f"q{i}")
            c_lang.append(str(lang))
            c_qids.append([f"q{i}"])
    for _ in range(n_qids):
        c_lang.append(str(rng.choice(langs)))
        c_qids.append([])
    scores = rng.random((len(q_lang), len(c_lang)))
    if decimals is not None:
        scores = np.round(scores, decimals)
    scores = scores + skill * np.array([[q in c for c in c_qids] for q in q_qid])
    return scores, dict(q_lang=q_lang, q_qid=q_qid, c_lang=c_lang, c_qids=c_qids)


def build_pairs(xquad_dir: Path, xquad_r_dir: Path, languages, articles, seed: int):
    """A small pair table: every monolingual and ordered cross-lingual triplet of the given XQuAD articles."""
    from hybrid_ir.pairs import build_pair_table
    from hybrid_ir.sources import xquad_units

    return build_pair_table(xquad_units(xquad_dir, xquad_r_dir, languages, articles, seed), languages)


def run(cmd, cwd, env, check=True):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def files_of(folder: Path) -> dict:
    """{relative path: bytes} of every file under `folder`."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def stages_run(output: str) -> set:
    return set(re.findall(r"Running stage '([^']+)'", output))


def copy_pipeline(root: Path) -> None:
    """The real dvc.yaml, stage scripts, package and params.yaml, copied into `root`."""
    for name in ("dvc.yaml", ".gitignore", "params.yaml"):
        shutil.copy(REPO / name, root / name)
    for folder in ("stages", "hybrid_ir"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))


def init_dvc_repo(root: Path) -> dict:
    """git + DVC in `root`, offline; returns the environment the stages run in."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(root), HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    run(["git", "init", "-q"], root, env)
    run(["dvc", "init", "-q"], root, env)
    run(["dvc", "config", "core.analytics", "false"], root, env)
    return env


def tiny_pipeline_params(seeds) -> dict:
    """params.yaml shrunk to seconds per stage: tiny random model, 3 languages, 2 + 2 articles."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    langs = ["de", "en", "es"]
    params["data"] = {"mirror": str(SHARED_CORPORA), "allow_network": False}
    params["split"].update(train_articles=2, eval_articles=2)
    params["pairs"]["languages"] = langs
    params["model"].update(source="tiny-random", max_length=32)
    params["train"].update(steps=4, batch_size=4, warmup_steps=1, freeze_layers=1, checkpoint_every=2,
                           val_questions=8, val_batches=2, eval_every=2, seeds=list(seeds))
    params["encode"]["batch_size"] = 32
    params["eval"].update(xquad_r_languages=langs, mlqa_r_languages=langs, mlqa_r_question_ids=12,
                          bootstrap=100)  # the fewest resamples allowed: the report runs in most tests
    return params


def repro_tiny_pipeline(root: Path, seeds) -> tuple[Path, dict, str]:
    """The real pipeline in `root` on tiny_pipeline_params, reproduced once: (root, env, dvc's output)."""
    import yaml

    copy_pipeline(root)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_pipeline_params(seeds), sort_keys=False))
    env = init_dvc_repo(root)
    first = run(["dvc", "repro"], root, env)
    return root, env, first.stdout + first.stderr


def per_run_stages(seeds, kinds=("encode", "evaluate", "miracl_encode", "miracl_evaluate")) -> set:
    """Every per-run stage for these training seeds (train, encode, evaluate, miracl_*); kinds=() the train stages."""
    names = {f"train_{v}@{s}" for v in VARIANTS[1:] for s in seeds}
    names |= {f"{k}@{v}-{s}" for k in kinds for v in VARIANTS[1:] for s in seeds}
    return names


def set_params(root: Path, **sections) -> None:
    """Update sections of root/params.yaml, as an edit by hand would."""
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
