"""What a stage declares in dvc.yaml, and params that hold a stage to it.

DVC sets DVC_STAGE (e.g. `train@mono`) for every stage command. `stage.run` then hands the stage params
in which reading a key that its dvc.yaml entry does not list raises ParamsError naming the key and the
stage, so every run proves the declarations (the end-to-end test runs every stage). The resolver below
expands `foreach` and `matrix` entries the way DVC names and interpolates them; tests check it against
DVC's own resolution for every stage of dvc.yaml.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import yaml

from .errors import ParamsError

PARAMS_FILE = "params.yaml"
_REF = re.compile(r"\$\{\s*(key|item)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\s*\}")


_PARAM_REF = re.compile(r"^\$\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}$")


def _param_value(ref: str, params: dict | None):
    """A matrix axis given as `${section.key}`: its list from params.yaml (DVC's vars)."""
    m = _PARAM_REF.match(ref)
    if not m:
        return ref
    value = params or {}
    for part in m.group(1).split("."):
        if not isinstance(value, dict) or part not in value:
            raise ParamsError(f"dvc.yaml: cannot resolve {ref} from {PARAMS_FILE}")
        value = value[part]
    return value


def stage_instances(entry: dict, name: str, params: dict | None = None) -> dict:
    """{stage name: (key, item)} for one dvc.yaml entry: plain, foreach (list or dict) or matrix; `params`
    (params.yaml as a dict) resolves axes given as `${section.key}`."""
    if "foreach" in entry:
        items = entry["foreach"]
        if isinstance(items, dict):
            keyed = items.items()
        else:  # DVC names list items by value, or by position when they are mappings or lists
            keyed = ((str(i) if isinstance(item, (dict, list)) else str(item), item) for i, item in enumerate(items))
        return {f"{name}@{key}": (key, item) for key, item in keyed}
    if "matrix" in entry:
        axes = {axis: _param_value(values, params) if isinstance(values, str) else values
                for axis, values in entry["matrix"].items()}
        out = {}
        for combo in itertools.product(*axes.values()):
            item = dict(zip(axes, combo))
            out[f"{name}@{'-'.join(str(v) for v in combo)}"] = (None, item)
        return out
    return {name: (None, None)}


def _interpolate(text: str, key, item, stage: str) -> str:
    def value(match):
        ref, attr = match.groups()
        found = key if ref == "key" else item
        if attr is not None:
            if not isinstance(found, dict) or attr not in found:
                raise ParamsError(f"dvc.yaml: {stage}: cannot resolve {match.group(0)}")
            found = found[attr]
        if found is None:
            raise ParamsError(f"dvc.yaml: {stage}: cannot resolve {match.group(0)}")
        return str(found)

    resolved = _REF.sub(value, text)
    if "${" in resolved:
        raise ParamsError(f"dvc.yaml: {stage}: unsupported interpolation in {text!r}")
    return resolved


def declared_params(stage: str, dvc_yaml: str | Path = "dvc.yaml") -> tuple:
    """The params keys (sections like `train` or leaves like `eval.trec_depth`) that `stage` declares."""
    path = Path(dvc_yaml)
    if not path.exists():
        raise ParamsError(f"{path}: not found; stage {stage} cannot check its declared params")
    entries = (yaml.safe_load(path.read_text()) or {}).get("stages", {})
    params_file = path.parent / PARAMS_FILE
    params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
    for name, entry in entries.items():
        instances = stage_instances(entry, name, params)
        if stage in instances:
            key, item = instances[stage]
            body = entry.get("do", entry)
            keys = []
            for declared in body.get("params", []):
                if isinstance(declared, dict):  # {file: [keys]}
                    for file, names in declared.items():
                        if file != PARAMS_FILE:
                            raise ParamsError(f"dvc.yaml: {stage}: params from {file} are not supported")
                        keys.extend(params if names is None else names)  # `params.yaml:` alone: every key
                else:
                    keys.append(declared)
            return tuple(dict.fromkeys(_interpolate(str(k), key, item, stage) for k in keys))
    raise ParamsError(f"{path}: no stage named {stage} (DVC_STAGE)")


def _guarded(section, section_name: str, allowed: frozenset, stage: str, declared: tuple):
    """A copy of a frozen params section whose undeclared fields raise ParamsError when read."""
    cls = type(section)
    fields = frozenset(f.name for f in dataclasses.fields(cls))

    def __getattribute__(self, name):
        if name in fields and name not in allowed:
            raise ParamsError(f"stage {stage} reads {section_name}.{name}, which its dvc.yaml entry does not "
                              f"declare (params: {', '.join(declared) or 'none'}); add it there")
        return object.__getattribute__(self, name)

    guarded_type = type(f"Declared{cls.__name__}", (cls,), {"__getattribute__": __getattribute__, "_plain": cls})
    guarded = object.__new__(guarded_type)
    for name in fields:
        object.__setattr__(guarded, name, object.__getattribute__(section, name))
    return guarded


def plain_type(section) -> type:
    """The params dataclass of `section`, guarded or not (to build a new section from declared values)."""
    return type(section).__dict__.get("_plain", type(section))


def restrict(params, stage: str, declared: tuple):
    """`params` in which reading any key that `declared` does not cover raises ParamsError."""
    sections = {}
    for field in dataclasses.fields(params):
        section = getattr(params, field.name)
        if field.name in declared:
            sections[field.name] = section
        else:
            allowed = frozenset(k.split(".", 1)[1] for k in declared if k.startswith(f"{field.name}."))
            sections[field.name] = _guarded(section, field.name, allowed, stage, declared)
    return type(params)(**sections)
