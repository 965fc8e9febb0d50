"""A params overlay file (such as params.paper.yaml) as one validated `dvc exp run`.

    python -m hybrid_ir.overlay params.paper.yaml            # dvc exp run -S key=value ... (validated first)
    python -m hybrid_ir.overlay params.paper.yaml --print    # only print the -S arguments
    python -m hybrid_ir.overlay params.paper.yaml -- -n paper-data   # extra arguments for dvc exp run

The overlay holds only the keys it changes. It is merged onto params.yaml and the result checked
with the same loader the stages use, so a typo or a bad value stops here, before DVC runs anything;
the experiment is then an ordinary DVC experiment whose params.yaml holds the merged values.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from .params import ParamsError, parse_params


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def merge(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def set_params_args(params_path: str | Path, overlay_path: str | Path) -> list[str]:
    """`-S key=value` arguments for `dvc exp run` (values in JSON, which Hydra's override grammar reads)."""
    base = yaml.safe_load(Path(params_path).read_text()) or {}
    overlay = yaml.safe_load(Path(overlay_path).read_text()) or {}
    if not isinstance(overlay, dict):
        raise ParamsError(f"{overlay_path}: must be a mapping of params groups")
    parse_params(merge(base, overlay))  # raises ParamsError naming the key
    args = []
    for key, value in _leaves(overlay):
        args += ["-S", f"{key}={json.dumps(value, separators=(',', ':'), ensure_ascii=False)}"]
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        args = set_params_args("params.yaml", argv[0])
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "--print" in argv:
        print("\n".join(args[1::2]))
        return 0
    return subprocess.call(["dvc", "exp", "run", *args, *extra])


if __name__ == "__main__":
    sys.exit(main())
