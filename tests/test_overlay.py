"""The paper-scale switch (params.paper.yaml through hybrid_ir.overlay), checked offline."""
import shutil

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from hybrid_ir.overlay import main, merge, set_params_args
from hybrid_ir.params import ParamsError, load_params, parse_params
from tests.helpers import REPO


def test_paper_overlay_passes_validation_and_dvc_applies_it_as_merged(tmp_path):
    args = set_params_args(REPO / "params.yaml", REPO / "params.paper.yaml")
    assert args[0::2] == ["-S"] * (len(args) // 2)
    target = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", target)
    apply_overrides(target, args[1::2])  # what `dvc exp run -S ...` does to params.yaml
    applied = load_params(target)
    expected = parse_params(merge(yaml.safe_load((REPO / "params.yaml").read_text()),
                                  yaml.safe_load((REPO / "params.paper.yaml").read_text())))
    assert applied == expected
    assert applied.pairs.sources == ("squad_mlqa", "mmarco") and applied.translate.languages == ("ru", "th", "tr")
    assert applied.split.train_articles == 0 and applied.split.eval_articles == 48
    assert applied.model == load_params(REPO / "params.yaml").model  # the data switch leaves the model alone


def test_bad_overlay_stops_before_dvc(tmp_path, monkeypatch, capsys):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump({"pairs": {"sourcse": ["mmarco"]}}))
    with pytest.raises(ParamsError, match="pairs.sourcse: unknown key"):
        set_params_args(REPO / "params.yaml", overlay)
    monkeypatch.chdir(REPO)
    assert main([str(overlay)]) == 2
    assert "error: pairs.sourcse: unknown key" in capsys.readouterr().err
    assert main(["params.paper.yaml", "--print"]) == 0
    assert 'pairs.sources=["squad_mlqa","mmarco"]' in capsys.readouterr().out.splitlines()
