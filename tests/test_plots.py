import numpy as np
import pandas as pd
from PIL import Image

from hybrid_ir.plots import matrices_table, pair_matrix, variant_matrices, write_heatmaps
from tests.helpers import REPO


def _per_lang(variant, offset):
    rows = [("mono", "de", "de", .8), ("mono", "en", "en", .9), ("cross", "de", "en", .6), ("cross", "en", "de", .7),
            ("multi", "de", "all", .5), ("multi", "en", "all", .55)]
    frame = pd.DataFrame(rows, columns=["setting", "query_lang", "passage_lang", "map"])
    return frame.assign(map=frame["map"] + offset, dataset="xquad_r", variant=variant)


def test_pair_matrix_has_mono_on_the_diagonal_and_cross_off_it():
    m = pair_matrix(_per_lang("mono", 0.0))
    assert list(m.index) == ["de", "en"] and list(m.columns) == ["de", "en"]
    np.testing.assert_allclose(m.to_numpy(), [[.8, .6], [.7, .9]])


def test_matrices_table_and_heatmap_png(tmp_path):
    per_lang = pd.concat([_per_lang("mono", 0.0), _per_lang("hybrid", 0.05)])
    table = matrices_table(variant_matrices(per_lang, "xquad_r", ["base", "mono", "hybrid"]))  # base has no rows: left out
    assert list(table.columns) == ["variant", "query_lang", "de", "en"]
    assert table["variant"].tolist() == ["mono", "mono", "hybrid", "hybrid"]
    assert table.loc[2, "en"] == .65
    mats = variant_matrices(per_lang, "xquad_r", ["mono", "hybrid"])
    write_heatmaps(tmp_path / "a.png", mats, "test", {"mono": "X-X-mono"})
    write_heatmaps(tmp_path / "b.png", mats, "test", {"mono": "X-X-mono"})
    data = (tmp_path / "a.png").read_bytes()
    assert data == (tmp_path / "b.png").read_bytes()  # no timestamp or version in the file
    assert len(data) < 100_000
    with Image.open(tmp_path / "a.png") as image:
        assert image.format == "PNG" and image.mode == "P" and min(image.size) > 100


def test_difference_heatmap_and_same_language_bars(tmp_path):
    from hybrid_ir.plots import (BLIND, difference_matrix, same_language_table, write_difference_heatmaps,
                                 write_share_bars)

    diffs = pd.DataFrame([(a, b, x, y, d, d - .01, d + .01, abs(d) > .01)
                          for a, b in (("hybrid", "mono"), ("hybrid", "cross"))
                          for (x, y), d in {("de", "de"): .02, ("de", "en"): -.03, ("en", "de"): 0.0,
                                            ("en", "en"): .005}.items()],
                         columns=["a", "b", "query_lang", "passage_lang", "diff", "lo", "hi", "significant"])
    m = difference_matrix(diffs[diffs["b"] == "mono"])
    np.testing.assert_allclose(m.to_numpy(), [[.02, -.03], [0.0, .005]])
    write_difference_heatmaps(tmp_path / "d.png", diffs, "XQuAD-R", {"mono": "X-X-mono"})
    write_difference_heatmaps(tmp_path / "e.png", diffs, "XQuAD-R", {"mono": "X-X-mono"})
    assert (tmp_path / "d.png").read_bytes() == (tmp_path / "e.png").read_bytes()
    per_lang = pd.concat([_per_lang(v, o) for v, o in (("mono", 0.0), ("hybrid", .05))])
    multi = per_lang["setting"] == "multi"
    per_lang["same_lang_top10"] = np.where(multi, np.where(per_lang["variant"] == "mono", .6, .3), np.nan)
    per_lang["same_lang_top10_blind"] = np.where(multi, .5, np.nan)
    table = same_language_table(per_lang, ["base", "mono", "hybrid"])
    assert table["variant"].tolist() == ["mono", "mono", "hybrid", "hybrid", BLIND, BLIND]
    assert table["share"].tolist() == [.6, .6, .3, .3, .5, .5]
    assert table["series"].tolist()[:2] == ["xquad_r/de", "xquad_r/en"]
    write_share_bars(tmp_path / "s.png", table, {"xquad_r": "XQuAD-R", "mlqa_r": "MLQA-R"}, {"mono": "X-X-mono"})
    with Image.open(tmp_path / "s.png") as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_loss_curves_have_a_value_at_every_point_and_a_trailing_mean():
    from hybrid_ir.plots import loss_curves

    logs = pd.DataFrame({"variant": ["mono"] * 4 + ["cross"] * 4 + ["mono"] * 2, "step": [0, 1, 2, 3] * 2 + [0, 1],
                         "seed": [13] * 8 + [14] * 2, "loss": [4.0, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0, 5.0, 8.0, 6.0],
                         "lr": 1e-5, "kind": "mono", "val_loss": [None, 2.5, None, 1.5, None, None, None, 0.5, None, 7.0]})
    steps, val = loss_curves(logs, window=2)
    # never across variants or training seeds
    assert steps["loss_smooth"].tolist() == [4.0, 3.0, 2.5, 2.0, 1.0, 1.0, 1.0, 3.0, 8.0, 7.0]
    assert val.to_dict("list") == {"variant": ["mono", "mono", "cross", "mono"], "seed": [13, 13, 13, 14],
                                   "step": [1, 3, 3, 1], "val_loss": [2.5, 1.5, 0.5, 7.0]}
    assert "val_loss" not in steps


def test_every_plot_template_colours_variants_as_the_figures_do():
    import json

    from hybrid_ir.plots import VARIANT_COLORS

    for name in ("lines_by_variant.json", "bars_by_variant.json"):
        template = json.loads((REPO / "hybrid_ir" / "plot_templates" / name).read_text())
        scale = template["encoding"]["color"]["scale"]
        assert dict(zip(scale["domain"], scale["range"])) == VARIANT_COLORS, name
