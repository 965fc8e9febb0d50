import numpy as np
import pandas as pd
from PIL import Image

from hybrid_ir.plots import matrices_table, pair_matrix, variant_matrices, write_heatmaps


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
