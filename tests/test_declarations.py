"""dvc.yaml declares what the stages use: code deps are each script's import closure in hybrid_ir (no more,
no less), and the params a stage may read are resolved exactly as DVC resolves them.
The params side is proved at run time: tests/test_pipeline.py runs every stage under DVC, where reading an
undeclared key fails (hybrid_ir/declared.py)."""
import ast
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from hybrid_ir import declared
from hybrid_ir.errors import ParamsError
from hybrid_ir.params import Params

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "hybrid_ir"


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = REPO.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imported_modules(path: Path) -> set:
    """Project modules a file imports anywhere (top level or inside functions), as dotted names."""
    own = ".".join(path.relative_to(REPO).with_suffix("").parts)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from hybrid_ir import miracl`
    return {m for m in found if _module_file(m) is not None}


def import_closure(script: Path) -> set:
    """Repo-relative paths of every hybrid_ir file that running `script` can import, transitively."""
    seen, todo = set(), [script]
    while todo:
        for module in _imported_modules(todo.pop()):
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
                file = _module_file(".".join(parts[:i]))
                if file is not None and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return {str(f.relative_to(REPO)) for f in seen}


def _entries():
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _script(body: dict) -> str:
    return next(token for token in body["cmd"].split() if token.endswith(".py"))


@pytest.mark.parametrize("name", sorted(_entries()))
def test_code_deps_are_the_scripts_import_closure(name):
    body = _entries()[name].get("do", _entries()[name])
    script = _script(body)
    assert script in body["deps"], f"{name}: the script {script} is not a dependency"
    listed = {d for d in body["deps"] if d.startswith(f"{PACKAGE}/") and d.endswith(".py")}
    needed = import_closure(REPO / script)
    missing, needless = sorted(needed - listed), sorted(listed - needed)
    assert not missing and not needless, f"stage {name}: missing deps {missing}; needless deps {needless}"


def test_the_closure_follows_relative_lazy_and_package_imports(tmp_path, monkeypatch):
    """The closure finder itself, on the real package: stage.py imports declared.py, which imports errors.py;
    miracl_encode imports encoder.py only inside main()."""
    closure = import_closure(REPO / "stages" / "miracl_encode.py")
    assert {"hybrid_ir/__init__.py", "hybrid_ir/stage.py", "hybrid_ir/declared.py", "hybrid_ir/errors.py",
            "hybrid_ir/encoder.py", "hybrid_ir/miracl.py"} <= closure
    assert "hybrid_ir/report.py" not in closure and "hybrid_ir/training.py" not in closure


def test_leaf_modules_import_nothing_of_the_project():
    for leaf in ("errors", "vocab"):
        assert import_closure(REPO / PACKAGE / f"{leaf}.py") == set(), leaf
    assert import_closure(REPO / PACKAGE / "params.py") == {
        "hybrid_ir/__init__.py", "hybrid_ir/errors.py", "hybrid_ir/vocab.py"}


def test_declared_params_resolve_as_dvc_resolves_them():
    from dvc.repo import Repo

    repo = Repo(str(REPO))
    stages = [s for s in repo.index.stages if s.path_in_repo == "dvc.yaml"]
    assert len(stages) > 11
    every = list(yaml.safe_load((REPO / "params.yaml").read_text()))  # DVC's empty list: the whole file
    for stage in stages:
        theirs = [key for dep in stage.deps if type(dep).__name__ == "ParamsDependency"
                  for key in (dep.params or every)]
        ours = declared.declared_params(stage.name, REPO / "dvc.yaml")
        assert list(ours) == list(dict.fromkeys(theirs)), stage.name


def test_foreach_and_matrix_names_and_interpolation(tmp_path):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "a": {"cmd": "x", "params": ["eval.seed"]},
        "b": {"foreach": {"mono": {"p": "train"}, "hybrid": {"p": "sampler"}},
              "do": {"cmd": "x ${key}", "params": ["model", "${item.p}"]}},
        "c": {"foreach": ["base", "mono"], "do": {"cmd": "x ${item}", "params": ["encode"]}},
        "d": {"matrix": {"variant": ["mono", "cross"], "seed": [1, 2]},
              "do": {"cmd": "x", "params": ["train", {"params.yaml": ["eval.bootstrap"]}]}},
    }}, sort_keys=False))
    path = tmp_path / "dvc.yaml"
    assert declared.declared_params("a", path) == ("eval.seed",)
    assert declared.declared_params("b@hybrid", path) == ("model", "sampler")
    assert declared.declared_params("c@mono", path) == ("encode",)
    assert declared.declared_params("d@cross-2", path) == ("train", "eval.bootstrap")
    with pytest.raises(ParamsError, match="no stage named b@cross"):
        declared.declared_params("b@cross", path)
    # a matrix axis read from params.yaml, as DVC's vars: `${train.seeds}`
    (tmp_path / "params.yaml").write_text("train:\n  seeds: [13, 14]\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "e": {"matrix": {"variant": ["mono"], "seed": "${train.seeds}"}, "cmd": "x", "params": ["model"]}}},
        sort_keys=False))
    assert declared.declared_params("e@mono-14", path) == ("model",)
    with pytest.raises(ParamsError, match="no stage named e@mono-15"):
        declared.declared_params("e@mono-15", path)


def test_restricted_params_raise_on_undeclared_reads_naming_key_and_stage():
    params = declared.restrict(Params(), "train@mono", ("train", "model", "sampler.cross_pairing"))
    assert params.train.steps == Params().train.steps
    assert params.sampler.cross_pairing == "per_triplet"
    assert params.model.max_length == 128
    with pytest.raises(ParamsError, match=r"stage train@mono reads sampler\.mono_ratio, which its dvc\.yaml"):
        params.sampler.mono_ratio
    with pytest.raises(ParamsError, match=r"reads eval\.trec_depth"):
        params.eval.trec_depth
    with pytest.raises(ParamsError, match=r"reads sampler\.mono_ratio"):
        dataclasses.asdict(params.sampler)  # a fingerprint of a whole section reads every key of it
    assert dataclasses.asdict(params.train) == dataclasses.asdict(Params().train)
    assert params.sampler.validate  # methods stay reachable


def _flow_list(indent: str, items: list) -> list:
    """`deps: [a, b, ...]` wrapped at 118 columns, continuation lines aligned after the bracket."""
    quoted = [f"'{i}'" if any(c in i for c in "{}[],#") else i for i in items]
    head = f"{indent}deps: ["
    lines, line = [], head
    for n, item in enumerate(quoted):
        piece = item + ("]" if n == len(quoted) - 1 else ",")
        if len(line) + len(piece) + 1 > 118 and line != head:
            lines.append(line.rstrip())
            line = " " * len(head)
        line += piece + ("" if n == len(quoted) - 1 else " ")
    return lines + [line]


def fix_dvc_yaml(path: Path = REPO / "dvc.yaml") -> None:
    """Rewrite each stage's code deps to its script's import closure; the rest of the file stays as it is."""
    entries = yaml.safe_load(path.read_text())["stages"]
    lines, out, stage, i = path.read_text().splitlines(), [], None, 0
    while i < len(lines):
        line = lines[i]
        named = re.match(r"^  ([A-Za-z_][\w-]*):\s*(#.*)?$", line)  # a stage entry under `stages:`
        if named:
            stage = named.group(1)
        match = re.match(r"^(\s*)deps:\s*(.*)$", line)
        if not match or stage not in entries:
            out.append(line)
            i += 1
            continue
        indent, rest = match.groups()
        i += 1
        if rest.startswith("["):  # a flow list, maybe over several lines
            while "]" not in lines[i - 1]:
                i += 1
        else:  # a block list
            while i < len(lines) and re.match(rf"^{indent}\s+(- |#)", lines[i]):
                i += 1
        body = entries[stage].get("do", entries[stage])
        script = _script(body)
        others = [d for d in body["deps"] if d != script and not (d.startswith(f"{PACKAGE}/") and d.endswith(".py"))]
        out += _flow_list(indent, [script, *sorted(import_closure(REPO / script)), *others])
    path.write_text("\n".join(out) + "\n")


if __name__ == "__main__":  # python tests/test_declarations.py: bring dvc.yaml's code deps up to date
    fix_dvc_yaml()
